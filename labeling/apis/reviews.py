"""Adjudication through the API: ``GET /api/v1/queues/{id}/reviews/pending/`` lists a queue's
contested items, ``GET /api/v1/queue-items/{id}/review/`` shows one as a reviewer sees it, and
``POST`` to the same address records the final label. Reviewers and admins only; the same
gatekeeper and service as the ``/review/`` pages."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import User
from labeling.selectors.reviews import (
    queue_review_items,
    review_item_get_for_reviewer,
    review_item_payload,
    review_payload,
    review_queue_get,
)
from labeling.services.reviews import ReviewExists, review_submit


class QueueReviewsPendingApi(APIView):
    """The queue's contested items without a review (``?all=1``: with the reviewed ones too)."""

    @extend_schema(
        responses={
            200: OpenApiResponse(description="[{item, comparison, judgments, disagreement, reasons, ...}]"),
            403: OpenApiResponse(description="Not a reviewer or admin."),
        }
    )
    def get(self, request: Request, queue_id: int) -> Response:
        reviewer = cast(User, request.user)
        queue = review_queue_get(reviewer=reviewer, queue_id=queue_id)
        pending = request.query_params.get("all") not in ("1", "true")
        return Response(queue_review_items(queue=queue, reviewer=reviewer, pending=pending))


class QueueItemReviewApi(APIView):
    """``GET``: the item as a reviewer sees it (stored order, raters pseudonymous), with its review
    if any. ``POST``: the final label: 201 with the review; 409 with the stored one if the item
    was reviewed already; 403 for a non-reviewer or a reviewer who judged the item."""

    class InputSerializer(serializers.Serializer):
        preference = serializers.JSONField(
            required=False, help_text="-3..3 in stored order: negative = response 1 (position 0) better"
        )
        ranking = serializers.JSONField(required=False, help_text="[[0], [2, 1], ...]: positions, best first")
        note = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)

    @extend_schema(
        responses={
            200: OpenApiResponse(description="prompt, responses, judgments, review"),
            403: OpenApiResponse(description="Not a reviewer, or the reviewer judged this item."),
            409: OpenApiResponse(description="Nobody judged this item yet."),
        }
    )
    def get(self, request: Request, item_id: int) -> Response:
        item = review_item_get_for_reviewer(reviewer=cast(User, request.user), item_id=item_id)
        return Response(review_item_payload(item=item))

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OpenApiResponse(description="The review."),
            403: OpenApiResponse(description="Not a reviewer, or the reviewer judged this item."),
            409: OpenApiResponse(description="Already reviewed: the stored review is in `review`."),
        },
    )
    def post(self, request: Request, item_id: int) -> Response:
        reviewer = cast(User, request.user)
        item = review_item_get_for_reviewer(reviewer=reviewer, item_id=item_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            review = review_submit(item=item, reviewer=reviewer, **data.validated_data)
        except ReviewExists as exc:
            return Response(
                {"detail": exc.message, "review": review_payload(exc.review)}, status=status.HTTP_409_CONFLICT
            )
        return Response(review_payload(review), status=status.HTTP_201_CREATED)
