from django.urls import URLPattern, URLResolver, path

from labeling.apis import (
    accounts,
    assignments,
    audit,
    pauses,
    queue_admin,
    queues,
    redteam_sessions,
    reviews,
    rubrics,
    sessions,
)
from labeling.apis import leaderboard as leaderboard_api
from labeling.apis import redteam_imports as redteam_imports_api
from labeling.apis import redteam_reviews as redteam_reviews_api
from labeling.apis import redteam_runs as redteam_runs_api
from labeling.apis import redteam_safe_replies as redteam_safe_replies_api
from labeling.apis import wellbeing as wellbeing_api
from labeling.views import account, chat, manage, rate, review
from labeling.views import audit as audit_views
from labeling.views import leaderboard as leaderboard_views
from labeling.views import redteam as redteam_views
from labeling.views import redteam_imports as redteam_imports_views
from labeling.views import redteam_review as redteam_review_views
from labeling.views import redteam_runs as redteam_runs_views
from labeling.views import wellbeing as wellbeing_views

api_patterns: list[URLPattern | URLResolver] = [
    path(
        "redteam/queues/<int:queue_id>/next/",
        redteam_reviews_api.RedteamQueueNextApi.as_view(),
        name="api-redteam-queue-next",
    ),
    path("attacks/", redteam_reviews_api.AttackListApi.as_view(), name="api-attacks"),
    path(
        "attacks/<int:attack_id>/review/",
        redteam_reviews_api.AttackReviewApi.as_view(),
        name="api-attack-review",
    ),
    path(
        "attacks/<int:attack_id>/skip/", redteam_reviews_api.AttackSkipApi.as_view(), name="api-attack-skip"
    ),
    path("wellbeing/exposure/", wellbeing_api.WellbeingExposureApi.as_view(), name="api-wellbeing-exposure"),
    path("redteam/imports/", redteam_imports_api.RedteamImportApi.as_view(), name="api-redteam-imports"),
    path("session-templates/", sessions.SessionTemplateListCreateApi.as_view(), name="api-session-templates"),
    path("sessions/", sessions.SessionListCreateApi.as_view(), name="api-sessions"),
    path("sessions/<int:session_id>/", sessions.SessionDetailApi.as_view(), name="api-session"),
    path(
        "sessions/<int:session_id>/messages/",
        sessions.SessionMessageApi.as_view(),
        name="api-session-messages",
    ),
    path("sessions/<int:session_id>/branch/", sessions.SessionBranchApi.as_view(), name="api-session-branch"),
    path("sessions/<int:session_id>/finish/", sessions.SessionFinishApi.as_view(), name="api-session-finish"),
    path(
        "sessions/<int:session_id>/turns/<int:turn_id>/reply/",
        sessions.TurnReplyApi.as_view(),
        name="api-session-turn-reply",
    ),
    path(
        "sessions/<int:session_id>/turns/<int:turn_id>/retry/",
        sessions.TurnRetryApi.as_view(),
        name="api-session-turn-retry",
    ),
    path(
        "sessions/<int:session_id>/turns/<int:turn_id>/label/",
        redteam_sessions.TurnLabelApi.as_view(),
        name="api-session-turn-label",
    ),
    path("adversary-jobs/", redteam_runs_api.AdversaryJobListCreateApi.as_view(), name="api-adversary-jobs"),
    path(
        "adversary-jobs/<int:job_id>/",
        redteam_runs_api.AdversaryJobDetailApi.as_view(),
        name="api-adversary-job",
    ),
    path(
        "adversary-jobs/<int:job_id>/cancel/",
        redteam_runs_api.AdversaryJobCancelApi.as_view(),
        name="api-adversary-job-cancel",
    ),
    path(
        "adversary-jobs/<int:job_id>/retry/",
        redteam_runs_api.AdversaryJobRetryApi.as_view(),
        name="api-adversary-job-retry",
    ),
    path("redteam/eval-runs/", redteam_runs_api.RedteamEvalRunListCreateApi.as_view(), name="api-eval-runs"),
    path(
        "redteam/eval-runs/<int:run_id>/",
        redteam_runs_api.RedteamEvalRunDetailApi.as_view(),
        name="api-eval-run",
    ),
    path(
        "redteam/eval-runs/<int:run_id>/cancel/",
        redteam_runs_api.RedteamEvalRunCancelApi.as_view(),
        name="api-eval-run-cancel",
    ),
    path(
        "redteam/eval-runs/<int:run_id>/retry/",
        redteam_runs_api.RedteamEvalRunRetryApi.as_view(),
        name="api-eval-run-retry",
    ),
    path("redteam/rates/", redteam_runs_api.RedteamRatesApi.as_view(), name="api-redteam-rates"),
    path(
        "redteam/safe-replies/",
        redteam_safe_replies_api.RedteamSafeRepliesApi.as_view(),
        name="api-redteam-safe-replies",
    ),
    path("auth/token/", accounts.TokenObtainApi.as_view(), name="api-token"),
    path("auth/keys/", accounts.ApiKeyListCreateApi.as_view(), name="api-keys"),
    path("auth/keys/<int:key_id>/", accounts.ApiKeyDetailApi.as_view(), name="api-key"),
    path("audit/", audit.AuditEventListApi.as_view(), name="api-audit"),
    path("leaderboard/", leaderboard_api.LeaderboardApi.as_view(), name="api-leaderboard"),
    path("users/", accounts.UserCreateApi.as_view(), name="api-users"),
    path("rubrics/", rubrics.RubricListCreateApi.as_view(), name="api-rubrics"),
    path("queues/", queues.QueueListCreateApi.as_view(), name="api-queues"),
    path("queues/<int:queue_id>/", queue_admin.QueueDetailApi.as_view(), name="api-queue"),
    path("queues/<int:queue_id>/next/", assignments.QueueNextApi.as_view(), name="api-queue-next"),
    path("queues/<int:queue_id>/items/", queues.QueueItemsAddApi.as_view(), name="api-queue-items"),
    path("queues/<int:queue_id>/gold/", queues.QueueGoldApi.as_view(), name="api-queue-gold"),
    path("queues/<int:queue_id>/stats/", queues.QueueStatsApi.as_view(), name="api-queue-stats"),
    path("queues/<int:queue_id>/pauses/", pauses.QueuePausesApi.as_view(), name="api-queue-pauses"),
    path(
        "queues/<int:queue_id>/pauses/<int:pause_id>/lift/",
        pauses.QueuePauseLiftApi.as_view(),
        name="api-queue-pause-lift",
    ),
    path(
        "queues/<int:queue_id>/reviews/pending/",
        reviews.QueueReviewsPendingApi.as_view(),
        name="api-queue-reviews-pending",
    ),
    path(
        "queue-items/<int:item_id>/review/",
        reviews.QueueItemReviewApi.as_view(),
        name="api-queue-item-review",
    ),
    path(
        "assignments/<int:assignment_id>/", assignments.AssignmentDetailApi.as_view(), name="api-assignment"
    ),
    path(
        "assignments/<int:assignment_id>/judgment/",
        assignments.AssignmentJudgmentApi.as_view(),
        name="api-assignment-judgment",
    ),
    path(
        "assignments/<int:assignment_id>/skip/",
        assignments.AssignmentSkipApi.as_view(),
        name="api-assignment-skip",
    ),
]

page_patterns: list[URLPattern | URLResolver] = [
    path("redteam/review/", redteam_review_views.redteam_review_home, name="redteam-review-home"),
    path(
        "redteam/review/<int:queue_id>/",
        redteam_review_views.redteam_review_queue,
        name="redteam-review-queue",
    ),
    path("manage/wellbeing/", wellbeing_views.manage_wellbeing, name="manage-wellbeing"),
    path("account/keys/", account.account_keys, name="account-keys"),
    path("account/keys/<int:key_id>/revoke/", account.account_key_revoke, name="account-key-revoke"),
    path("manage/audit/", audit_views.manage_audit, name="manage-audit"),
    path("manage/leaderboard/", leaderboard_views.manage_leaderboard, name="manage-leaderboard"),
    path("manage/redteam/", redteam_runs_views.manage_redteam, name="manage-redteam"),
    path(
        "manage/redteam/adversary-jobs/",
        redteam_runs_views.manage_adversary_job_start,
        name="manage-adversary-job-start",
    ),
    path(
        "manage/redteam/adversary-jobs/<int:job_id>/<str:action>/",
        redteam_runs_views.manage_adversary_job_action,
        name="manage-adversary-job-action",
    ),
    path("manage/redteam/eval-runs/", redteam_runs_views.manage_eval_run_start, name="manage-eval-run-start"),
    path(
        "manage/redteam/safe-replies/",
        redteam_runs_views.manage_safe_replies_request,
        name="manage-safe-replies-request",
    ),
    path(
        "manage/redteam/import/",
        redteam_imports_views.manage_redteam_import,
        name="manage-redteam-import",
    ),
    path("manage/queues/", manage.manage_queues, name="manage-queues"),
    path("manage/queues/new/", manage.manage_queue_new, name="manage-queue-new"),
    path("manage/queues/<int:queue_id>/", manage.manage_queue, name="manage-queue"),
    path("manage/queues/<int:queue_id>/status/", manage.manage_queue_status, name="manage-queue-status"),
    path(
        "manage/queues/<int:queue_id>/settings/", manage.manage_queue_settings, name="manage-queue-settings"
    ),
    path("manage/queues/<int:queue_id>/members/", manage.manage_queue_members, name="manage-queue-members"),
    path(
        "manage/queues/<int:queue_id>/pauses/<int:pause_id>/lift/",
        review.manage_pause_lift,
        name="manage-queue-pause-lift",
    ),
    path("review/", review.review_home, name="review-home"),
    path("review/queues/<int:queue_id>/", review.review_queue, name="review-queue"),
    path("review/items/<int:item_id>/", review.review_item, name="review-item"),
    path("", rate.home, name="home"),
    path("rate/", rate.rate_home, name="rate-home"),
    path("rate/<int:queue_id>/", rate.rate_queue, name="rate-queue"),
    path("rate/assignment/<int:assignment_id>/", rate.rate_assignment, name="rate-assignment"),
    path("rate/<int:queue_id>/undo/", rate.rate_undo, name="rate-undo"),
    path("rate/profile/", rate.rate_profile, name="rate-profile"),
    path("chat/", chat.chat_home, name="chat-home"),
    path("chat/start/", chat.chat_start, name="chat-start"),
    path("chat/<int:session_id>/", chat.chat_session, name="chat-session"),
    path("chat/<int:session_id>/say/", chat.chat_say, name="chat-say"),
    path("chat/<int:session_id>/branch/", chat.chat_branch, name="chat-branch"),
    path("chat/<int:session_id>/finish/", chat.chat_finish, name="chat-finish"),
    path("chat/<int:session_id>/turns/<int:turn_id>/rank/", chat.chat_rank, name="chat-rank"),
    path("chat/<int:session_id>/turns/<int:turn_id>/reply/", chat.chat_reply, name="chat-reply"),
    path("chat/<int:session_id>/turns/<int:turn_id>/retry/", chat.chat_retry, name="chat-retry"),
    path("redteam/", redteam_views.redteam_home, name="redteam-home"),
    path("redteam/start/", redteam_views.redteam_start, name="redteam-start"),
    path("redteam/<int:session_id>/", chat.chat_session, name="redteam-session"),
    path("redteam/<int:session_id>/finish/", redteam_views.redteam_finish, name="redteam-finish"),
    path(
        "redteam/<int:session_id>/turns/<int:turn_id>/label/",
        redteam_views.redteam_label,
        name="redteam-label",
    ),
]
