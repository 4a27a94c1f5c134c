"""Rubrics: ``GET``/``POST /api/v1/rubrics/`` (versioned; a used version is frozen)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import services
from labeling.models import Rubric
from labeling.permissions import IsAdminRole


class CriterionSerializer(serializers.Serializer):
    key = serializers.SlugField()
    question = serializers.CharField()
    # Field names that shadow DRF Field attributes (help_text, required) need the ignores.
    help_text = serializers.CharField(required=False, allow_blank=True, default="")  # type: ignore[assignment]
    kind = serializers.CharField()
    required = serializers.BooleanField(required=False, default=False)  # type: ignore[assignment]


class RubricOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    description = serializers.CharField()
    copy_overall = serializers.BooleanField()
    frozen = serializers.BooleanField()
    criteria = CriterionSerializer(many=True, source="criteria.all")


class RubricListCreateApi(APIView):
    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        copy_overall = serializers.BooleanField(
            default=False, help_text="Raters may copy the overall preference into empty criteria (key C)."
        )
        criteria = CriterionSerializer(many=True)

    @extend_schema(responses={200: RubricOutputSerializer(many=True)})
    def get(self, request: Request) -> Response:
        rubrics = Rubric.objects.prefetch_related("criteria")
        return Response(RubricOutputSerializer(rubrics, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: RubricOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rubric = services.rubric_create(**data.validated_data)
        return Response(RubricOutputSerializer(rubric).data, status=status.HTTP_201_CREATED)
