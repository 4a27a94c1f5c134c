"""Import jobs through the API: how a job reads (``ImportJobSerializer``, also the body of a 202)
and ``GET /api/v1/imports/``, ``GET /api/v1/imports/{id}/`` (admins)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsAdminRole

from ..models import ImportJob
from ..selectors import import_job_get, import_job_list


@extend_schema_serializer(component_name="ImportLineError")
class ImportLineErrorSerializer(serializers.Serializer):
    """One problem of a file: its line (or row; null for the file as a whole), field, message."""

    line = serializers.IntegerField(allow_null=True)
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


def line_error_field() -> Any:
    """A field for one problem (a new instance each time: a field is bound to one parent)."""
    return ImportLineErrorSerializer()


def counts_field() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField()),
        help_text='What was written: {"prompts": {"created", "existing"}, "candidates": ..., "preferences": ...}.',
    )


@extend_schema_serializer(component_name="ImportJob")
class ImportJobSerializer(serializers.Serializer):
    """A big import run by a worker (202): watch it at ``url`` until ``status`` is final."""

    id = serializers.IntegerField()
    url = serializers.SerializerMethodField()
    kind = serializers.CharField()
    format = serializers.CharField()
    status = serializers.ChoiceField(choices=ImportJob.Status.choices)
    file_name = serializers.CharField()
    file_bytes = serializers.IntegerField()
    lines_done = serializers.IntegerField(help_text="Lines (rows) read and checked so far.")
    lines_total = serializers.IntegerField(allow_null=True, help_text="Lines (rows) in the file.")
    progress = serializers.FloatField(help_text="0..1; every line read means the job is writing.")
    result = counts_field()
    error = serializers.CharField(
        help_text="The first problem, naming its line and field; empty unless failed."
    )
    # DRF collects declared fields, so this one does not shadow Serializer.errors (the stubs think so).
    errors = serializers.ListField(child=line_error_field())  # type: ignore[assignment]
    error_count = serializers.IntegerField()
    options = serializers.JSONField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_url(self, obj: ImportJob) -> str:
        return reverse("import-job-detail", kwargs={"import_job_id": obj.pk})


class ImportJobListApi(APIView):
    """GET /api/v1/imports/: the latest import jobs (big imports run by a worker)."""

    permission_classes = [IsAdminRole]

    @extend_schema(operation_id="import_jobs_list", responses={200: ImportJobSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(ImportJobSerializer(import_job_list()[:100], many=True).data)


class ImportJobDetailApi(APIView):
    """GET /api/v1/imports/{id}/: one import job: status, progress, result or errors."""

    permission_classes = [IsAdminRole]

    @extend_schema(operation_id="import_jobs_retrieve", responses={200: ImportJobSerializer})
    def get(self, request: Request, import_job_id: int) -> Response:
        return Response(ImportJobSerializer(import_job_get(import_job_id=import_job_id)).data)
