"""Raters paused from a queue for their gold accuracy: ``GET /api/v1/queues/{id}/pauses/``
(researchers, admins) and ``POST /api/v1/queues/{id}/pauses/{pause_id}/lift/`` (admins), the
same selectors and service as the queue's dashboard."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.apis.queues import _queue_or_404
from labeling.models import User
from labeling.permissions import IsAdminRole, IsResearcherOrAdmin
from labeling.selectors.pauses import pause_payload, queue_pause_get, queue_pauses
from labeling.services.pauses import rater_queue_pause_lift


class QueuePausesApi(APIView):
    """The queue's rater pauses, open ones first, each with its evidence and any lift."""

    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(responses={200: OpenApiResponse(description="[{id, rater, reason, accuracy, open, ...}]")})
    def get(self, request: Request, queue_id: int) -> Response:
        queue = _queue_or_404(queue_id)
        return Response([pause_payload(p) for p in queue_pauses(queue=queue)])


class QueuePauseLiftApi(APIView):
    """Lift a pause: the rater may claim from the queue again (409 if already lifted)."""

    permission_classes = [IsAdminRole]

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(
            required=False, allow_blank=True, default="", help_text="Why it is lifted."
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OpenApiResponse(description="The lifted pause."),
            409: OpenApiResponse(description="Already lifted."),
        },
    )
    def post(self, request: Request, queue_id: int, pause_id: int) -> Response:
        queue = _queue_or_404(queue_id)
        pause = queue_pause_get(queue=queue, pause_id=pause_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        lifted = rater_queue_pause_lift(
            pause=pause, by=cast(User, request.user), note=data.validated_data["note"]
        )
        return Response(pause_payload(lifted))
