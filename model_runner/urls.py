from django.urls import URLPattern, URLResolver, path

from model_runner import apis, views

api_patterns: list[URLPattern | URLResolver] = [
    path("generation-jobs/", apis.GenerationJobListCreateApi.as_view(), name="api-generation-jobs"),
    path("generation-jobs/<int:job_id>/", apis.GenerationJobDetailApi.as_view(), name="api-generation-job"),
    path(
        "generation-jobs/<int:job_id>/cancel/",
        apis.GenerationJobCancelApi.as_view(),
        name="api-generation-job-cancel",
    ),
    path(
        "generation-jobs/<int:job_id>/retry/",
        apis.GenerationJobRetryApi.as_view(),
        name="api-generation-job-retry",
    ),
    path("generators/", apis.GeneratorListCreateApi.as_view(), name="api-generators"),
    path("generators/<int:generator_id>/", apis.GeneratorDetailApi.as_view(), name="api-generator"),
]
page_patterns: list[URLPattern | URLResolver] = [
    path("manage/generation/", views.manage_generation, name="manage-generation"),
    path(
        "manage/generation/<int:job_id>/<str:action>/",
        views.manage_generation_action,
        name="manage-generation-action",
    ),
]
