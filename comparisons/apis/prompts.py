"""GET /api/v1/prompts/: the prompt list (researchers, admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsResearcherOrAdmin

from ..importing import split_tags
from ..models import Prompt
from ..selectors import prompt_list


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
        external_id = serializers.CharField(
            allow_null=True, help_text="Its first external id: the one exports show."
        )
        external_ids = serializers.SerializerMethodField(
            help_text="Every external id the prompt was imported under (the first one first); each finds it."
        )
        messages = serializers.JSONField()
        tags = serializers.ListField(child=serializers.CharField())
        collection = serializers.CharField()
        source = serializers.CharField()  # type: ignore[assignment]
        candidate_count = serializers.IntegerField()
        created_at = serializers.DateTimeField()

        def get_external_ids(self, prompt: Prompt) -> list[str]:
            ids = [prompt.external_id] if prompt.external_id else []
            return ids + [e.value for e in prompt.external_ids.all() if e.value not in ids]

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
        ).prefetch_related("external_ids")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)
