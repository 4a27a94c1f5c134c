"""``GET /api/v1/audit/`` (admins): the audit log, filtered, a page at a time; ``?download=csv``
or ``?download=jsonl`` streams every matching event. The same filters and rows as ``/manage/audit/``."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsAdminRole
from labeling.selectors.audit import (
    AUDIT_FILTERS,
    PAGE_SIZE,
    audit_event_list,
    audit_event_row,
    audit_filters_clean,
    audit_page,
)
from labeling.views.audit import audit_download


class AuditEventListApi(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(
        parameters=[
            *(OpenApiParameter(name, str) for name in AUDIT_FILTERS),
            OpenApiParameter("page", int, description=f"{PAGE_SIZE} events a page, newest first."),
            OpenApiParameter(
                "download", str, enum=["csv", "jsonl"], description="Every matching event, oldest first."
            ),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            # ?download=: every matching event as CSV or JSON Lines, streamed.
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
        },
    )
    def get(self, request: Request) -> Response | StreamingHttpResponse:
        filters = audit_filters_clean(request.query_params)
        download = request.query_params.get("download")
        if download:
            return audit_download(request._request, filters, download)
        page = audit_page(audit_event_list(**filters), request.query_params.get("page"))
        return Response(
            {
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "results": [audit_event_row(e) for e in page],
            }
        )
