"""Export API: create, list and watch snapshots, and download their files (researchers and admins)."""

from __future__ import annotations

from typing import Any, cast

from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from export.models import ExportRun
from export.selectors import export_run_file, export_run_get, export_run_list
from export.services import export_run_create
from labeling.apis_common import IsResearcherOrAdmin
from labeling.models import User


@extend_schema_serializer(component_name="ExportRun")
class ExportRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    format = serializers.CharField()
    status = serializers.CharField()
    row_count = serializers.IntegerField()
    sha256 = serializers.CharField()
    manifest = serializers.JSONField()
    filters = serializers.JSONField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, obj: ExportRun) -> str | None:
        if obj.status != ExportRun.Status.SUCCEEDED:
            return None
        url = reverse("export-run-download", kwargs={"export_run_id": obj.pk})
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


def _render(export_run: ExportRun, request: Request) -> dict[str, Any]:
    return dict(ExportRunOutputSerializer(export_run, context={"request": request}).data)


class ExportRunCollectionApi(APIView):
    """``GET`` lists runs, ``POST`` creates one: two operations sharing the ``/exports/`` route."""

    permission_classes = [IsResearcherOrAdmin]

    # Every API's nested serializer is called InputSerializer; give the schema a unique name.
    @extend_schema_serializer(component_name="ExportRunCreateInput")
    class InputSerializer(serializers.Serializer):
        format = serializers.CharField(required=False, default=ExportRun.Format.TRL.value)
        filters = serializers.DictField(required=False, default=dict)
        name = serializers.CharField(required=False, default="preferences")

    @extend_schema(responses=ExportRunOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        runs = export_run_list()
        return Response(ExportRunOutputSerializer(runs, many=True, context={"request": request}).data)

    @extend_schema(request=InputSerializer, responses={201: ExportRunOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export_run = export_run_create(
            # IsResearcherOrAdmin has let only authenticated users through.
            created_by=cast(User, request.user),
            **serializer.validated_data,
        )
        return Response(_render(export_run, request), status=status.HTTP_201_CREATED)


class ExportRunDetailApi(APIView):
    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(responses=ExportRunOutputSerializer)
    def get(self, request: Request, export_run_id: int) -> Response:
        export_run = export_run_get(export_run_id=export_run_id)
        return Response(_render(export_run, request))


class ExportRunDownloadApi(APIView):
    """Streams the finished file as JSONL; 409 while the run is queued, running or failed."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The JSONL file."
            ),
            409: OpenApiResponse(description="The run has not succeeded."),
        }
    )
    def get(self, request: Request, export_run_id: int) -> FileResponse:
        export_run = export_run_get(export_run_id=export_run_id)
        path = export_run_file(export_run=export_run)
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"{export_run.name}.jsonl",
            content_type="application/x-ndjson",
        )
