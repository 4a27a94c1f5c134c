"""Red-team sessions over the API: a model turn's label.

A red-team session starts as any session (``POST /api/v1/sessions/`` with ``target`` and
``category``), talks the same way, and ends through ``POST /api/v1/sessions/{id}/finish/`` with a
``verdict`` and ``description`` (``labeling.apis.sessions``).
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import User
from labeling.selectors.redteam_sessions import turn_label_payload
from labeling.selectors.sessions import session_get_for_trainer, session_turn_get
from labeling.services.redteam_sessions import turn_label_set


class TurnLabelSerializer(serializers.Serializer):
    reply = serializers.CharField(help_text="The labelled reply's letter (A.. as shown).")
    outcome = serializers.CharField()
    category = serializers.CharField()
    tactic = serializers.CharField()
    severity = serializers.IntegerField()
    ideal_reply = serializers.CharField(allow_blank=True)
    updated_at = serializers.DateTimeField()


class TurnLabelApi(APIView):
    """Label (or relabel, while the session is active) a model turn of the caller's red-team
    session: ``outcome`` (complied, partial, refused, over_refused), ``category`` (a harm
    category key), ``tactic``, ``severity`` 1..5, optional ``ideal_reply``, and ``reply`` (the
    letter of the alternative labelled; needed when the turn shows several, and that one becomes
    the reply the conversation goes on with). ``201`` for a new label, ``200`` for a relabel; a
    bad field is a ``400`` naming it, with nothing written."""

    class InputSerializer(serializers.Serializer):
        # Kept as given (JSON types): the service checks each field and names it when it is wrong.
        reply = serializers.JSONField(required=False, default=None)
        outcome = serializers.JSONField(required=False, default=None)
        category = serializers.JSONField(required=False, default=None)
        tactic = serializers.JSONField(required=False, default=None)
        severity = serializers.JSONField(required=False, default=None)
        ideal_reply = serializers.JSONField(required=False, default=None)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: TurnLabelSerializer,
            201: TurnLabelSerializer,
            400: OpenApiResponse(description="A field is wrong (named in `field`)."),
            409: OpenApiResponse(description="Not a red-team session, finished, or the turn is not settled."),
        },
    )
    def post(self, request: Request, session_id: int, turn_id: int) -> Response:
        trainer: User = request.user  # type: ignore[assignment]
        session = session_get_for_trainer(trainer=trainer, session_id=session_id)
        turn = session_turn_get(session=session, turn_id=turn_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label, created = turn_label_set(turn=turn, **data.validated_data)
        turn.refresh_from_db()
        return Response(
            turn_label_payload(label, turn), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
