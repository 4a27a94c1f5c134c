from django.urls import URLPattern, URLResolver, path

from . import apis, views

api_patterns: list[URLPattern | URLResolver] = [
    path("prompts/", apis.PromptListApi.as_view(), name="prompt-list"),
    path("prompts/import/", apis.PromptImportApi.as_view(), name="prompt-import"),
    path("candidates/import/", apis.CandidateImportApi.as_view(), name="candidate-import"),
]
page_patterns: list[URLPattern | URLResolver] = [
    path("manage/import/", views.manage_import, name="manage-import"),
]
