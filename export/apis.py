"""Export API: create, list and watch snapshots, estimate their size, download them (researchers and admins)."""

from __future__ import annotations

import mimetypes
from typing import Any, cast

from django.http import FileResponse, StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from export.archive import zip_stream
from export.models import ExportRun
from export.selectors.facts import export_estimate
from export.selectors.runs import export_run_file, export_run_folder, export_run_get, export_run_list
from export.services.runs import export_run_create
from export.spec import export_spec_clean
from labeling.audit import audit_record
from labeling.models import User
from labeling.permissions import IsResearcherOrAdmin


@extend_schema_serializer(component_name="ExportRun")
class ExportRunOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    format = serializers.CharField()
    aggregation = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.FloatField()
    judgments_done = serializers.IntegerField()
    judgments_total = serializers.IntegerField()
    row_count = serializers.IntegerField()
    sha256 = serializers.CharField()
    files = serializers.JSONField()
    manifest = serializers.JSONField()
    filters = serializers.JSONField()
    options = serializers.JSONField()
    code_version = serializers.CharField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
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


class _ExportRequestSerializer(serializers.Serializer):
    format = serializers.CharField(required=False, default=ExportRun.Format.TRL.value)
    aggregation = serializers.CharField(required=False, default=ExportRun.Aggregation.RAW.value)
    filters = serializers.DictField(required=False, default=dict)
    options = serializers.DictField(required=False, default=dict)
    name = serializers.CharField(required=False, default="preferences")


class ExportRunCollectionApi(APIView):
    """``GET`` lists runs, ``POST`` creates one: two operations sharing the ``/exports/`` route."""

    permission_classes = [IsResearcherOrAdmin]

    # Every API's nested serializer is called InputSerializer; give the schema a unique name.
    @extend_schema_serializer(component_name="ExportRunCreateInput")
    class InputSerializer(_ExportRequestSerializer):
        pass

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


class ExportEstimateApi(APIView):
    """The rows an export would have, counted in SQL without writing anything (the page's live estimate)."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema_serializer(component_name="ExportEstimateInput")
    class InputSerializer(_ExportRequestSerializer):
        pass

    @extend_schema_serializer(component_name="ExportEstimate")
    class OutputSerializer(serializers.Serializer):
        judgments = serializers.IntegerField()
        rankings = serializers.IntegerField()
        comparisons = serializers.IntegerField()
        rows = serializers.IntegerField()
        upper_bound = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        spec = export_spec_clean(**serializer.validated_data)
        estimate = export_estimate(
            filters=spec.filters,
            format=spec.format,
            aggregation=spec.aggregation,
            pairs=spec.options["pairs"],
        )
        return Response(self.OutputSerializer(estimate).data)


class ExportRunDetailApi(APIView):
    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(responses=ExportRunOutputSerializer)
    def get(self, request: Request, export_run_id: int) -> Response:
        export_run = export_run_get(export_run_id=export_run_id)
        return Response(_render(export_run, request))


class ExportRunDownloadApi(APIView):
    """Streams the snapshot as a zip, or one of its files with ``?file=<path>``; 409 until it succeeded."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "file", str, description="One file's path from the run's `files`, e.g. data/train.parquet."
            )
        ],
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The snapshot folder as a zip, or the one file asked for."
            ),
            409: OpenApiResponse(description="The run has not succeeded."),
            410: OpenApiResponse(description="The run's files are no longer on disk."),
        },
    )
    def get(self, request: Request, export_run_id: int) -> FileResponse | StreamingHttpResponse:
        export_run = export_run_get(export_run_id=export_run_id)
        relative = request.query_params.get("file")
        if relative:
            path = export_run_file(export_run=export_run, relative=relative)
            audit_record("export.download", target=export_run, changes={"file": relative})
            content_type = (
                {
                    ".jsonl": "application/x-ndjson",
                    ".parquet": "application/vnd.apache.parquet",
                    ".gz": "application/gzip",
                    ".md": "text/markdown; charset=utf-8",
                }.get(path.suffix)
                or mimetypes.guess_type(path.name)[0]
                or "application/octet-stream"
            )
            return FileResponse(
                path.open("rb"),
                as_attachment=True,
                filename=f"{export_run.name}-{path.name}",
                content_type=content_type,
            )
        folder = export_run_folder(export_run=export_run)
        audit_record("export.download", target=export_run, changes={"file": "(the snapshot, as a zip)"})
        paths = [f["path"] for f in export_run.files]
        response = StreamingHttpResponse(
            zip_stream(folder, paths, prefix=export_run.name), content_type="application/zip"
        )
        response["Content-Disposition"] = f'attachment; filename="{export_run.name}.zip"'
        return response
