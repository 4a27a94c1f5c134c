"""The import endpoints (admins): prompts, responses made elsewhere, preference datasets.

The three imports (prompts, responses, preference datasets) share one view: parse the options,
call ``import_start`` (the page's door too), answer 201 with the result, or 202 with the
ImportJob a worker runs when the file is big (watched at ``GET /api/v1/imports/{id}/``).
"""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import BaseParser, DataAndFiles, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsAdminRole

from ..importing import ImportFailed, LineError
from ..models import ImportJob, Prompt
from ..readers import FORMATS
from ..services.common import ImportResult
from ..services.import_jobs import OPTIONS, import_start
from .import_jobs import ImportJobSerializer, counts_field, line_error_field

JSONL_MEDIA_TYPES = ("application/jsonl", "application/x-ndjson", "text/plain")
#: Bodies of the other formats, sent raw (``format`` may also say which, e.g. with octet-stream).
FILE_MEDIA_TYPES = (
    "text/csv",
    "application/vnd.apache.parquet",
    "application/vnd.apache.arrow.stream",
    "application/vnd.apache.arrow.file",
    "application/zip",
    "application/octet-stream",
)


class _RawBodyParser(BaseParser):
    """Hands the raw body on, unread, as the upload ``file``: the import streams it line by line
    (or spools a columnar file to disk)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> DataAndFiles:
        return DataAndFiles(QueryDict(mutable=True), MultiValueDict({"file": [stream]}))


_JSONLinesParser = _RawBodyParser  # the name it had


def _raw_parser(media: str) -> type[BaseParser]:
    name = "".join(part.title() for part in media.replace("/", "-").replace(".", "-").split("-")) + "Parser"
    return type(name, (_RawBodyParser,), {"media_type": media})


class JSONLinesParser(_RawBodyParser):
    media_type = "application/jsonl"


class NDJSONParser(_RawBodyParser):
    media_type = "application/x-ndjson"


class PlainTextLinesParser(_RawBodyParser):
    media_type = "text/plain"


IMPORT_PARSERS: list[type[BaseParser]] = [
    MultiPartParser,
    JSONLinesParser,
    NDJSONParser,
    PlainTextLinesParser,
    *(_raw_parser(media) for media in FILE_MEDIA_TYPES),
]


ImportErrorSerializer = inline_serializer(
    name="ImportError",
    fields={
        "detail": serializers.CharField(),
        "line": serializers.IntegerField(allow_null=True),
        "field": serializers.CharField(allow_null=True),
        "errors": serializers.ListField(child=line_error_field()),
        "error_count": serializers.IntegerField(),
    },
)


def _upload(request: Request) -> Any:
    """The file: the multipart field ``file`` or the raw body (see the parsers above)."""
    upload = request.FILES.get("file")
    if upload is None:
        raise ImportFailed(
            [
                LineError(
                    None,
                    "file",
                    "missing: upload a file in the form field 'file' or send it as the body",
                )
            ]
        )
    return upload


def _size(request: Request, upload: Any) -> int | None:
    """The upload's size when the request says it: the multipart file's, or the body's length."""
    size = getattr(upload, "size", None)
    if isinstance(size, int):
        return size
    length = request.META.get("CONTENT_LENGTH") or ""
    return int(length) if length.isascii() and length.isdigit() else None


def _params(request: Request) -> dict[str, Any]:
    """Options from the query string, overridden by form fields of a multipart upload."""
    params: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params}
    if isinstance(request.data, QueryDict):
        params.update({k: v for k, v in request.data.items() if isinstance(v, str)})
    return params


def _media_type_bodies(form: Any) -> dict[str, Any]:
    bodies: dict[str, Any] = {"multipart/form-data": form}
    bodies.update({media_type: OpenApiTypes.BINARY for media_type in (*JSONL_MEDIA_TYPES, *FILE_MEDIA_TYPES)})
    return bodies


_FORMAT_HELP = (
    "jsonl, csv, parquet, arrow (an Arrow IPC file) or dataset (a zip of a folder saved by "
    "Hugging Face datasets); by default what the file's name or the body's media type says, else jsonl."
)
_COLUMNS_HELP = (
    'Which column holds which field: a JSON object ({"prompt": "question"}) or field=column pairs '
    "separated by commas. Fields not named are read from the column of their own name."
)


class _FileOptionsSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=FORMATS, required=False, help_text=_FORMAT_HELP)
    columns = serializers.CharField(required=False, allow_blank=True, help_text=_COLUMNS_HELP)
    split = serializers.CharField(
        required=False, allow_blank=True, help_text="The split of a saved DatasetDict (format dataset)."
    )


class _PromptOptionsSerializer(_FileOptionsSerializer):
    collection = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    tags = serializers.CharField(required=False, allow_blank=True, default="", help_text="Comma-separated.")
    # A field named "source" shadows Field.source in the stubs only; DRF collects declared fields.
    source = serializers.ChoiceField(  # type: ignore[assignment]
        choices=Prompt.Source.choices, default=Prompt.Source.IMPORT
    )


class _ImportApi(APIView):
    """An import, all-or-nothing: 201 with its result when small, 202 with an ImportJob when big."""

    permission_classes = [IsAdminRole]
    parser_classes = IMPORT_PARSERS
    kind = ""
    InputSerializer: type[serializers.Serializer] = _FileOptionsSerializer

    def post(self, request: Request) -> Response:
        try:
            upload = _upload(request)
            params = self.InputSerializer(data=_params(request))
            params.is_valid(raise_exception=True)
            options = {k: v for k, v in params.validated_data.items() if k in OPTIONS[self.kind]}
            if "tags" in params.validated_data:
                options["default_tags"] = params.validated_data["tags"]
            outcome = import_start(
                kind=self.kind,
                upload=upload,
                created_by=request.user,
                options=options,
                file_name=str(getattr(upload, "name", "") or ""),
                size=_size(request, upload),
                media_type=request.content_type or "",
            )
        except ImportFailed as exc:
            return Response(exc.as_dict(), status=400)
        if isinstance(outcome, ImportJob):
            data = ImportJobSerializer(outcome).data
            return Response(data, status=202, headers={"Location": data["url"]})
        return Response(self.output(outcome), status=201)

    def output(self, result: ImportResult) -> dict[str, Any]:
        raise NotImplementedError


_ACCEPTED = OpenApiResponse(
    ImportJobSerializer, description="A big file: imported by a worker; watch the job."
)


class PromptImportApi(_ImportApi):
    """POST /api/v1/prompts/import/: prompts from JSONL, CSV, Parquet, Arrow or a saved dataset."""

    kind = "prompts"
    InputSerializer = _PromptOptionsSerializer

    @extend_schema_serializer(component_name="PromptImportUpload")
    class UploadSerializer(_PromptOptionsSerializer):
        file = serializers.FileField(
            help_text='One prompt a line (row): {"id"?, "messages": [{role, content}, ...], "tags"?} '
            'or {"id"?, "prompt": "text", "tags"?}.'
        )

    @extend_schema_serializer(component_name="PromptImportResult")
    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        existing = serializers.IntegerField()
        prompt_ids = serializers.ListField(
            child=serializers.IntegerField(), help_text="One per line, in order."
        )

    @extend_schema(
        operation_id="prompts_import",
        request=_media_type_bodies(UploadSerializer),
        parameters=[_PromptOptionsSerializer],
        responses={201: OutputSerializer, 202: _ACCEPTED, 400: ImportErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def output(self, result: ImportResult) -> dict[str, Any]:
        output = {
            "created": result.created,
            "existing": result.existing,
            "prompt_ids": [p.pk for p in result.prompts],
        }
        return dict(self.OutputSerializer(output).data)


class CandidateImportApi(_ImportApi):
    """POST /api/v1/candidates/import/: responses made elsewhere, all-or-nothing."""

    kind = "candidates"

    @extend_schema_serializer(component_name="CandidateImportUpload")
    class UploadSerializer(_FileOptionsSerializer):
        file = serializers.FileField(
            help_text='One response a line (row): {"prompt_id" or "messages", "text", "generator", '
            '"sample_index"?, "metadata"?}.'
        )

    @extend_schema_serializer(component_name="CandidateImportResult")
    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField()
        existing = serializers.IntegerField()
        candidate_ids = serializers.ListField(
            child=serializers.IntegerField(), help_text="One per line, in order."
        )

    @extend_schema(
        operation_id="candidates_import",
        request=_media_type_bodies(UploadSerializer),
        parameters=[_FileOptionsSerializer],
        responses={201: OutputSerializer, 202: _ACCEPTED, 400: ImportErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def output(self, result: ImportResult) -> dict[str, Any]:
        output = {
            "created": result.created,
            "existing": result.existing,
            "candidate_ids": [c.pk for c in result.candidates],
        }
        return dict(self.OutputSerializer(output).data)


class _PreferenceOptionsSerializer(_PromptOptionsSerializer):
    dataset = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="The dataset's name, given to the generator of its responses; default: the file's name.",
    )


class PreferenceImportApi(_ImportApi):
    """POST /api/v1/preferences/import/: an existing preference dataset (prompt, chosen, rejected)."""

    kind = "preferences"
    InputSerializer = _PreferenceOptionsSerializer

    @extend_schema_serializer(component_name="PreferenceImportUpload")
    class UploadSerializer(_PreferenceOptionsSerializer):
        file = serializers.FileField(
            help_text='One pair a line (row): {"prompt"?, "chosen", "rejected", "id"?, "tags"?}: replies as '
            "strings or message lists, or HH-RLHF transcripts without a prompt."
        )

    @extend_schema_serializer(component_name="PreferenceImportResult")
    class OutputSerializer(serializers.Serializer):
        created = serializers.IntegerField(help_text="Preference pairs stored.")
        existing = serializers.IntegerField(help_text="Pairs already there (or repeated in the file).")
        counts = counts_field()
        prompt_ids = serializers.ListField(
            child=serializers.IntegerField(), help_text="One per line, in order."
        )
        pairs = serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField()),
            help_text="[chosen candidate id, rejected candidate id], one per line, in order.",
        )

    @extend_schema(
        operation_id="preferences_import",
        request=_media_type_bodies(UploadSerializer),
        parameters=[_PreferenceOptionsSerializer],
        responses={201: OutputSerializer, 202: _ACCEPTED, 400: ImportErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        return super().post(request)

    def output(self, result: ImportResult) -> dict[str, Any]:
        ids = [c.pk for c in result.candidates]
        output = {
            "created": result.created,
            "existing": result.existing,
            "counts": result.counts,
            "prompt_ids": [p.pk for p in result.prompts],
            "pairs": [list(pair) for pair in zip(ids[::2], ids[1::2], strict=True)],
        }
        return dict(self.OutputSerializer(output).data)
