from django.urls import URLPattern, URLResolver, path

from labeling import apis
from labeling.views import manage, rate

api_patterns: list[URLPattern | URLResolver] = [
    path("auth/token/", apis.TokenObtainApi.as_view(), name="api-token"),
    path("users/", apis.UserCreateApi.as_view(), name="api-users"),
    path("rubrics/", apis.RubricListCreateApi.as_view(), name="api-rubrics"),
    path("queues/", apis.QueueListCreateApi.as_view(), name="api-queues"),
    path("queues/<int:queue_id>/next/", apis.QueueNextApi.as_view(), name="api-queue-next"),
    path("queues/<int:queue_id>/items/", apis.QueueItemsAddApi.as_view(), name="api-queue-items"),
    path("queues/<int:queue_id>/gold/", apis.QueueGoldApi.as_view(), name="api-queue-gold"),
    path("queues/<int:queue_id>/stats/", apis.QueueStatsApi.as_view(), name="api-queue-stats"),
    path("assignments/<int:assignment_id>/", apis.AssignmentDetailApi.as_view(), name="api-assignment"),
    path(
        "assignments/<int:assignment_id>/judgment/",
        apis.AssignmentJudgmentApi.as_view(),
        name="api-assignment-judgment",
    ),
    path(
        "assignments/<int:assignment_id>/skip/", apis.AssignmentSkipApi.as_view(), name="api-assignment-skip"
    ),
]

page_patterns: list[URLPattern | URLResolver] = [
    path("manage/queues/", manage.manage_queues, name="manage-queues"),
    path("manage/queues/new/", manage.manage_queue_new, name="manage-queue-new"),
    path("manage/queues/<int:queue_id>/", manage.manage_queue, name="manage-queue"),
    path("", rate.home, name="home"),
    path("rate/", rate.rate_home, name="rate-home"),
    path("rate/<int:queue_id>/", rate.rate_queue, name="rate-queue"),
    path("rate/assignment/<int:assignment_id>/", rate.rate_assignment, name="rate-assignment"),
    path("rate/<int:queue_id>/undo/", rate.rate_undo, name="rate-undo"),
    path("rate/profile/", rate.rate_profile, name="rate-profile"),
]
