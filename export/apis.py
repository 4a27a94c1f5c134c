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
from export.selectors.reward_pairs import known_pairs_upload_read, reward_check_list
from export.selectors.runs import export_run_file, export_run_folder, export_run_get, export_run_list
from export.services.reward_checks import reward_check_create
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


# What the two agreement-based filters mean: the same words on the export page and in the card.
MIN_FILTERS_HELP = (
    "`min_judgments` (1..1000) and `min_agreement` (0..1). With aggregation `majority` or `mean` they "
    "test each row, a candidate pair whose votes are pooled from every comparison holding both "
    "responses: its `n_judgments` (votes) and its `agreement` column, the majority share (the share "
    "of its votes that agree with the row's direction: the winning side, or about the same for a "
    "tie). With `raw` they test each comparison: its number of judgments, and the share of them "
    "agreeing with the most common answer (averaged over its candidate pairs for a ranking). This "
    "is not the pairwise agreement between raters shown on the queue dashboard."
)


class _ExportRequestSerializer(serializers.Serializer):
    format = serializers.CharField(required=False, default=ExportRun.Format.TRL.value)
    aggregation = serializers.CharField(
        required=False,
        default=ExportRun.Aggregation.RAW.value,
        help_text=(
            "`raw` (a row per judgment), `majority` or `mean` (for `trl`, `hh`, `helpsteer`: a row per "
            "candidate pair, pooling the votes of every comparison that holds both responses)."
        ),
    )
    filters = serializers.DictField(
        required=False,
        default=dict,
        help_text=(
            "`queues`, `modes`, `rubric_versions`, `since`, `until`, `generators`, `tags`, "
            "`min_judgments`, `min_agreement`, `exclude_flagged`, `exclude_gold`, "
            "`exclude_paused_raters`, `sources` (`judgments`, `redteam`: red-team training pairs in "
            "`trl`, `hh`, `helpsteer`), `harm_categories` (red-team rows of these categories; the only "
            "filter of `redteam_eval` and `redteam_attempts`) (see docs/operations.md). " + MIN_FILTERS_HELP
        ),
    )
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


@extend_schema_serializer(component_name="RewardCheck")
class RewardCheckOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    export_run = serializers.IntegerField(source="export_run_id")
    status = serializers.CharField()
    progress = serializers.FloatField()
    steps_done = serializers.IntegerField()
    steps_total = serializers.IntegerField()
    options = serializers.JSONField()
    train_pairs = serializers.IntegerField()
    test_pairs = serializers.IntegerField()
    accuracy = serializers.FloatField(allow_null=True, help_text="Pairwise accuracy on the test split.")
    accuracy_low = serializers.FloatField(allow_null=True)
    accuracy_high = serializers.FloatField(allow_null=True)
    baseline_accuracy = serializers.FloatField(allow_null=True, help_text="The untrained model.")
    baseline_low = serializers.FloatField(allow_null=True)
    baseline_high = serializers.FloatField(allow_null=True)
    gold_n = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_low = serializers.FloatField(allow_null=True)
    gold_high = serializers.FloatField(allow_null=True)
    known_n = serializers.IntegerField()
    known_accuracy = serializers.FloatField(allow_null=True)
    known_low = serializers.FloatField(allow_null=True)
    known_high = serializers.FloatField(allow_null=True)
    verdict = serializers.CharField(help_text="pass, fail, inconclusive, or empty (no direction data).")
    timings = serializers.JSONField()
    error = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ExportRewardCheckApi(APIView):
    """``POST`` queues a reward-model check of a finished export (202); ``GET`` lists its checks."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema_serializer(component_name="RewardCheckCreateInput")
    class InputSerializer(serializers.Serializer):
        options = serializers.DictField(
            required=False,
            default=dict,
            help_text="`steps`, `train_layers`, `max_length`, `batch_size`, `learning_rate`, `seed`.",
        )
        known_pairs = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            trim_whitespace=False,
            help_text="JSONL of known-direction pairs {prompt, chosen, rejected} (or upload it as a file).",
        )

    @extend_schema(responses=RewardCheckOutputSerializer(many=True))
    def get(self, request: Request, export_run_id: int) -> Response:
        export_run = export_run_get(export_run_id=export_run_id)
        checks = reward_check_list(export_run=export_run)
        return Response(RewardCheckOutputSerializer(checks, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            202: RewardCheckOutputSerializer,
            409: OpenApiResponse(description="The export has not succeeded, has no pairs, or a check runs."),
        },
    )
    def post(self, request: Request, export_run_id: int) -> Response:
        export_run = export_run_get(export_run_id=export_run_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        known = serializer.validated_data["known_pairs"]
        upload = request.FILES.get("known_pairs")
        if upload is not None:
            known = known_pairs_upload_read(upload)
        check = reward_check_create(
            export_run=export_run,
            created_by=cast(User, request.user),
            options=serializer.validated_data["options"],
            known_pairs=known,
        )
        check.refresh_from_db()
        return Response(RewardCheckOutputSerializer(check).data, status=status.HTTP_202_ACCEPTED)
