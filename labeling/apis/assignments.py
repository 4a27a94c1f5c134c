"""The rater loop: ``next``, an assignment, its judgment and its skip (the public API core).

Each route fetches through the gatekeepers (``queue_get_for_rater``, ``assignment_get_for_rater``)
and calls the same services as the judging page."""

from __future__ import annotations

from typing import cast

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors, services
from labeling.models import Judgment, User
from labeling.selectors.wellbeing import rater_break_due
from labeling.throttles import NextRateThrottle


class ResponseSerializer(serializers.Serializer):
    label = serializers.CharField()  # type: ignore[assignment]  # shadows Field.label
    text = serializers.CharField()


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    queue = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    expires_at = serializers.DateTimeField()
    prompt = serializers.ListField(child=serializers.DictField())
    responses = ResponseSerializer(many=True)
    rubric = serializers.DictField()
    guidelines = serializers.CharField()
    content_warning = serializers.CharField()
    take_break = serializers.BooleanField(
        required=False,
        help_text="next/ only: the rater did the queue's break_after items in a row; offer a break first.",
    )


class QueueNextApi(APIView):
    """Lease the next item: 201 with the assignment, 204 when nothing is left for this rater.

    404 for a queue that does not exist or that the caller is not a member of (as on the judging
    page); 403 with the reason for an unpassed qualification, a queue-wide content opt-out or a
    gold auto-pause;
    429 past ``PREFLAB_NEXT_RATE`` per user (``labeling.throttles``), or at the queue's daily cap
    (the message says when it resets); 403 for a queue marked disturbing when the rater has not
    opted in."""

    throttle_classes = [NextRateThrottle]

    class InputSerializer(serializers.Serializer):
        fresh = serializers.BooleanField(
            default=False, help_text="Lease another item although one is held (up to max_open_leases)."
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: AssignmentOutputSerializer,
            204: OpenApiResponse(description="Nothing is left for this rater."),
            403: OpenApiResponse(
                description="A qualification is not passed, the rater opted out of its content, or the "
                "rater is paused from the queue for their gold accuracy (the message gives the evidence)."
            ),
            409: OpenApiResponse(description="The rater already holds the most open items allowed."),
        },
    )
    def post(self, request: Request, queue_id: int) -> Response:
        queue = selectors.queue_get_for_rater(rater=request.user, queue_id=queue_id)  # type: ignore[arg-type]
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rater = cast(User, request.user)
        # Wellbeing: a break is due before a new item after the queue's break_after in a row.
        due = bool(queue.break_after) and selectors.rater_open_assignment(rater=rater, queue=queue) is None
        due = due and rater_break_due(rater=rater, queue=queue)
        assignment = services.assignment_claim_next(
            rater=rater, queue=queue, fresh=data.validated_data["fresh"]
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        body = {**selectors.assignment_payload(assignment), "take_break": due}
        return Response(body, status=status.HTTP_201_CREATED)


class AssignmentDetailApi(APIView):
    @extend_schema(responses={200: AssignmentOutputSerializer})
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_rater(rater=request.user, assignment_id=assignment_id)  # type: ignore[arg-type]
        return Response(selectors.assignment_payload(assignment))


class JudgmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    preference = serializers.IntegerField(allow_null=True)
    ranking = serializers.JSONField(allow_null=True)
    criteria = serializers.JSONField()
    flags = serializers.JSONField()
    rationale = serializers.CharField()
    active_seconds = serializers.FloatField(allow_null=True)
    rubric_version = serializers.IntegerField(source="rubric.version")
    created_at = serializers.DateTimeField()
    replayed = serializers.SerializerMethodField()

    def get_replayed(self, judgment: Judgment) -> bool:
        return bool(self.context.get("replayed"))


class AssignmentJudgmentApi(APIView):
    """Submit a judgment: 201 the first time, 200 with the stored judgment on a replay."""

    class InputSerializer(serializers.Serializer):
        preference = serializers.JSONField(required=False, help_text="-3..3; negative = A better, 0 = tie")
        ranking = serializers.JSONField(required=False, help_text='[["A"], ["C", "B"], ...], best first')
        criteria = serializers.JSONField(required=False)
        flags = serializers.JSONField(required=False)
        rationale = serializers.CharField(required=False, allow_blank=True, default="")
        rewrite = serializers.CharField(required=False, allow_blank=True, default="")
        active_seconds = serializers.FloatField(required=False, allow_null=True, default=None)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: JudgmentOutputSerializer,
            200: JudgmentOutputSerializer,
            409: OpenApiResponse(
                description="The item was skipped, or its lease expired and it is judged enough."
            ),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_rater(rater=request.user, assignment_id=assignment_id)  # type: ignore[arg-type]
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # The same service as the judging page: a rewrite is also stored as a human-written candidate.
        judgment, created = services.judgment_submit(assignment=assignment, **data.validated_data)
        body = JudgmentOutputSerializer(judgment, context={"replayed": not created}).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AssignmentSkipApi(APIView):
    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(
        request=InputSerializer,
        responses={
            200: OpenApiResponse(description="Skipped"),
            409: OpenApiResponse(description="The item is already judged."),
        },
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        assignment = selectors.assignment_get_for_rater(rater=request.user, assignment_id=assignment_id)  # type: ignore[arg-type]
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        skipped = services.assignment_skip(assignment=assignment, reason=data.validated_data["reason"])
        return Response({"id": skipped.pk, "status": skipped.status, "reason": skipped.skip_reason})
