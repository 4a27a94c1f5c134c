"""POST /api/v1/redteam/imports/ (admins): jailbreaks from production logs into a red-team review
queue, all or nothing (``labeling.services.redteam_imports``, the page's and the command's door too)."""

from __future__ import annotations

from typing import Any, cast

from django.http import QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from comparisons.apis.imports import (
    ImportErrorSerializer,
    JSONLinesParser,
    NDJSONParser,
    PlainTextLinesParser,
)
from comparisons.importing import ImportFailed, file_error
from labeling.models import User
from labeling.permissions import IsAdminRole
from labeling.selectors.redteam_imports import redteam_queue_find
from labeling.services.redteam_imports import attack_import_jsonl

AttackImportResultSerializer = inline_serializer(
    name="AttackImportResult",
    fields={
        "created": serializers.IntegerField(),
        "existing": serializers.IntegerField(),
        "attacks": serializers.ListField(
            child=serializers.IntegerField(), help_text="One per line, in order."
        ),
    },
)


class RedteamImportApi(APIView):
    """Production exchanges as pending ``wild`` attacks: 201 with what was created."""

    permission_classes = [IsAdminRole]
    parser_classes = [MultiPartParser, JSONLinesParser, NDJSONParser, PlainTextLinesParser]

    @extend_schema(
        operation_id="redteam_imports_create",
        request={
            "multipart/form-data": inline_serializer(
                name="AttackImportUpload",
                fields={
                    "file": serializers.FileField(
                        help_text='One exchange a line: {"messages": [..., the assistant reply], '
                        '"feedback"?: {"rating"?, "report_reason"?}, "model"?, "id"?}'
                    ),
                    "queue": serializers.CharField(help_text="The red-team review queue: id or name."),
                },
            ),
            "application/jsonl": OpenApiTypes.BINARY,
            "application/x-ndjson": OpenApiTypes.BINARY,
            "text/plain": OpenApiTypes.BINARY,
        },
        parameters=[
            OpenApiParameter(
                "queue", str, description="The red-team review queue (id or name), for a raw body."
            )
        ],
        responses={201: AttackImportResultSerializer, 400: ImportErrorSerializer},
    )
    def post(self, request: Request) -> Response:
        params: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params}
        if isinstance(request.data, QueryDict):
            params.update({k: v for k, v in request.data.items() if isinstance(v, str)})
        queue = redteam_queue_find(params.get("queue"))
        try:
            upload = request.FILES.get("file")
            if upload is None:
                raise file_error("missing: upload a file in the form field 'file' or send it as the body")
            result = attack_import_jsonl(queue=queue, file=upload, imported_by=cast(User, request.user))
        except ImportFailed as exc:
            return Response(exc.as_dict(), status=400)
        return Response(result.as_dict(), status=201)
