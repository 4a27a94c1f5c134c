from django.urls import URLPattern, URLResolver, path

from export import apis, views

api_patterns: list[URLPattern | URLResolver] = [
    path("exports/", apis.ExportRunCollectionApi.as_view(), name="export-run-list"),
    path("exports/estimate/", apis.ExportEstimateApi.as_view(), name="export-estimate"),
    path("exports/<int:export_run_id>/", apis.ExportRunDetailApi.as_view(), name="export-run-detail"),
    path(
        "exports/<int:export_run_id>/download/",
        apis.ExportRunDownloadApi.as_view(),
        name="export-run-download",
    ),
    path(
        "exports/<int:export_run_id>/reward-check/",
        apis.ExportRewardCheckApi.as_view(),
        name="export-reward-check",
    ),
]
page_patterns: list[URLPattern | URLResolver] = [
    path("manage/", views.manage_home, name="manage-home"),
    path("export/", views.export_page, name="export-page"),
    path("export/estimate/", views.export_estimate_json, name="export-estimate-page"),
    path(
        "export/<int:export_run_id>/reward-check/", views.export_reward_check, name="export-reward-check-page"
    ),
]
