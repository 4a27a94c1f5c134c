"""API for prompts and candidates: imports (admins, ``imports``) and the prompt list (``prompts``)."""

from .import_jobs import ImportJobDetailApi, ImportJobListApi
from .imports import CandidateImportApi, PreferenceImportApi, PromptImportApi
from .prompts import PromptListApi

__all__ = [
    "CandidateImportApi",
    "ImportJobDetailApi",
    "ImportJobListApi",
    "PreferenceImportApi",
    "PromptImportApi",
    "PromptListApi",
]
