from django.urls import URLPattern, URLResolver, path

from . import apis, views

api_patterns: list[URLPattern | URLResolver] = [
    path("prompts/", apis.PromptListApi.as_view(), name="prompt-list"),
    path("prompts/import/", apis.PromptImportApi.as_view(), name="prompt-import"),
    path("candidates/import/", apis.CandidateImportApi.as_view(), name="candidate-import"),
    path("preferences/import/", apis.PreferenceImportApi.as_view(), name="preference-import"),
    path("imports/", apis.ImportJobListApi.as_view(), name="import-job-list"),
    path("imports/<int:import_job_id>/", apis.ImportJobDetailApi.as_view(), name="import-job-detail"),
]
page_patterns: list[URLPattern | URLResolver] = [
    path("manage/import/", views.manage_import, name="manage-import"),
]
