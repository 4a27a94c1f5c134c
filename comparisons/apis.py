"""API for prompts and candidates: JSONL imports (admins) and the prompt list (researchers, admins)."""

from __future__ import annotations

from typing import Any

from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import BaseParser, DataAndFiles, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsAdminRole, IsResearcherOrAdmin

from .importing import ImportFailed, LineError, iter_chunks, split_tags
from .models import Prompt
from .selectors import prompt_list
from .services.candidates import candidates_import
from .services.prompts import prompts_import

JSONL_MEDIA_TYPES = ("application/jsonl", "application/x-ndjson", "text/plain")


class _JSONLinesParser(BaseParser):
    """Hands the raw body on, unread, as the upload ``file``: the import streams it line by line."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> DataAndFiles:
        return DataAndFiles(QueryDict(mutable=True), MultiValueDict({"file": [stream]}))


class JSONLinesParser(_JSONLinesParser):
    media_type = "application/jsonl"


class NDJSONParser(_JSONLinesParser):
    media_type = "application/x-ndjson"


class PlainTextLinesParser(_JSONLinesParser):
    media_type = "text/plain"


IMPORT_PARSERS = [MultiPartParser, JSONLinesParser, NDJSONParser, PlainTextLinesParser]

_line_error = inline_serializer(
    name="ImportLineError",
    fields={
        "line": serializers.IntegerField(allow_null=True),
        "field": serializers.CharField(allow_null=True),
        "message": serializers.CharField(),
    },
)
ImportErrorSerializer = inline_serializer(
    name="ImportError",
    fields={
        "detail": serializers.CharField(),
        "line": serializers.IntegerField(allow_null=True),
        "field": serializers.CharField(allow_null=True),
        "errors": serializers.ListField(child=_line_error),
        "error_count": serializers.IntegerField(),
    },
)


def _upload(request: Request) -> Any:
    """The JSONL: the multipart field ``file`` or the raw body (see the parsers above)."""
    upload = request.FILES.get("file")
    if upload is None:
        raise ImportFailed(
            [
                LineError(
                    None,
                    "file",
                    "missing: upload a JSONL file in the form field 'file' or send it as the body",
                )
            ]
        )
    return upload


def _params(request: Request) -> dict[str, Any]:
    """Options from the query string, overridden by form fields of a multipart upload."""
    params: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params}
    if isinstance(request.data, QueryDict):
        params.update({k: v for k, v in request.data.items() if isinstance(v, str)})
    return params


def _media_type_bodies(form: Any) -> dict[str, Any]:
    bodies: dict[str, Any] = {"multipart/form-data": form}
    bodies.update({media_type: OpenApiTypes.BINARY for media_type in JSONL_MEDIA_TYPES})
    return bodies


class PromptImportApi(APIView):
    """POST /api/v1/prompts/import/: JSONL of prompts, all-or-nothing."""

    permission_classes = [IsAdminRole]
    parser_classes = IMPORT_PARSERS

    class InputSerializer(serializers.Serializer):
        collection = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        tags = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="Comma-separated."
        )
        # A field named "source" shadows Field.source in the stubs only; DRF collects declared fields.
        source = serializers.ChoiceField(  # type: ignore[assignment]
            choices=Prompt.Source.choices, default=Prompt.Source.IMPORT
        )

    @extend_schema_serializer(component_name="PromptImportUpload")
    class UploadSerializer(InputSerializer):
        file = serializers.FileField(
            help_text='JSONL: {"id"?, "messages": [{role, content}, ...], "tags"?} a line.'
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
        parameters=[
            OpenApiParameter("collection", str, description="Collection for new prompts."),
            OpenApiParameter("tags", str, description="Comma-separated tags added to every prompt."),
            OpenApiParameter("source", str, enum=Prompt.Source.values),
        ],
        responses={201: OutputSerializer, 400: ImportErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        try:
            upload = _upload(request)
            params = self.InputSerializer(data=_params(request))
            params.is_valid(raise_exception=True)
            result = prompts_import(
                stream=iter_chunks(upload),
                source=params.validated_data["source"],
                collection=params.validated_data["collection"],
                default_tags=split_tags(params.validated_data["tags"]),
            )
        except ImportFailed as exc:
            return Response(exc.as_dict(), status=400)
        output = {
            "created": result.created,
            "existing": result.existing,
            "prompt_ids": [p.pk for p in result.prompts],
        }
        return Response(self.OutputSerializer(output).data, status=201)


class CandidateImportApi(APIView):
    """POST /api/v1/candidates/import/: JSONL of responses made elsewhere, all-or-nothing."""

    permission_classes = [IsAdminRole]
    parser_classes = IMPORT_PARSERS

    @extend_schema_serializer(component_name="CandidateImportUpload")
    class UploadSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text='JSONL: {"prompt_id" or "messages", "text", "generator", "sample_index"?, "metadata"?} a line.'
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
        responses={201: OutputSerializer, 400: ImportErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        try:
            result = candidates_import(stream=iter_chunks(_upload(request)))
        except ImportFailed as exc:
            return Response(exc.as_dict(), status=400)
        output = {
            "created": result.created,
            "existing": result.existing,
            "candidate_ids": [c.pk for c in result.candidates],
        }
        return Response(self.OutputSerializer(output).data, status=201)


class PromptListApi(APIView):
    """GET /api/v1/prompts/: prompts in id order, paginated, filtered by collection, tags, source."""

    permission_classes = [IsResearcherOrAdmin]

    class Pagination(PageNumberPagination):
        page_size = 50
        page_size_query_param = "page_size"
        max_page_size = 500

    # Read by drf-spectacular to describe the paginated response.
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        collection = serializers.CharField(required=False, max_length=200)
        tags = serializers.CharField(required=False, help_text="Comma-separated: prompts with any of them.")
        source = serializers.ChoiceField(choices=Prompt.Source.choices, required=False)  # type: ignore[assignment]

    @extend_schema_serializer(component_name="PromptListItem")
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        external_id = serializers.CharField(allow_null=True)
        messages = serializers.JSONField()
        tags = serializers.ListField(child=serializers.CharField())
        collection = serializers.CharField()
        source = serializers.CharField()  # type: ignore[assignment]
        candidate_count = serializers.IntegerField()
        created_at = serializers.DateTimeField()

    @extend_schema(
        operation_id="prompts_list",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        tags = filters.validated_data.get("tags")
        queryset = prompt_list(
            collection=filters.validated_data.get("collection"),
            tags=split_tags(tags) if tags is not None else None,
            source=filters.validated_data.get("source"),
            with_candidate_count=True,
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)
