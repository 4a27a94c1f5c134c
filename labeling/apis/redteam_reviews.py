"""Reviewing attacks through the API, the same gatekeepers and services as ``/redteam/review/``:

- ``POST /api/v1/redteam/queues/{id}/next/``: lease the next attack (201, blind payload), 204
  when nothing is left; 404 not a member (or not a red-team review queue), 403 not opted in to
  disturbing work, 429 at the queue's daily cap (``Retry-After``: seconds to midnight UTC);
- ``POST /api/v1/attacks/{id}/review/``: the verdict (201; 200 for a replay of the same one;
  409 with the stored verdict for a different one);
- ``POST /api/v1/attacks/{id}/skip/``: give it back unreviewed (200);
- ``GET /api/v1/attacks/``: reviewers, researchers and admins list attacks, filtered.
"""

from __future__ import annotations

from typing import cast

from django.core.paginator import Paginator
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.models import User
from labeling.selectors.redteam_reviews import (
    attack_get_for_reviewer,
    attack_held_by,
    attack_list_row,
    attack_review_payload,
    attacks_list,
    redteam_queue_get_for_rater,
)
from labeling.selectors.wellbeing import rater_break_due
from labeling.services.redteam_reviews import (
    AttackReviewExists,
    attack_claim_next,
    attack_review_submit,
    attack_skip,
)
from labeling.services.wellbeing import DailyCapReached

PAGE_SIZE = 50


class RedteamQueueNextApi(APIView):
    """Lease the next attack of a red-team review queue (see ``attack_claim_next``).

    ``take_break`` is true when the rater has just done the queue's ``break_after`` attacks in a
    row: a client should offer a break before showing this one (``labeling.selectors.wellbeing``)."""

    @extend_schema(
        request=None,
        responses={
            201: OpenApiResponse(description="The attack, blind: prompt, reply, claimed labels, source, ..."),
            204: OpenApiResponse(description="Nothing is left for this rater."),
            403: OpenApiResponse(description="Not opted in to disturbing work (see the profile)."),
            404: OpenApiResponse(description="No such red-team review queue, or not a member."),
            429: OpenApiResponse(
                description="The queue's daily cap is reached; Retry-After says when it resets."
            ),
        },
    )
    def post(self, request: Request, queue_id: int) -> Response:
        rater = cast(User, request.user)
        queue = redteam_queue_get_for_rater(rater=rater, queue_id=queue_id)
        now = timezone.now()
        due = bool(queue.break_after) and attack_held_by(rater=rater, queue=queue, now=now) is None
        due = due and rater_break_due(rater=rater, queue=queue, now=now)
        try:
            attack = attack_claim_next(rater=rater, queue=queue, now=now)
        except DailyCapReached as exc:
            return Response(
                {"detail": exc.message},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(exc.retry_after)},
            )
        if attack is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(attack_review_payload(attack, take_break=due), status=status.HTTP_201_CREATED)


class AttackReviewApi(APIView):
    """The verdict on an attack the caller was shown (see ``attack_review_submit``)."""

    class InputSerializer(serializers.Serializer):
        # Loose types: the service checks every value and its 400 names the field.
        verdict = serializers.JSONField(help_text="confirm | reject")
        outcome = serializers.JSONField(required=False, help_text="Final label; required to confirm.")
        category = serializers.JSONField(required=False, help_text="A harm category key.")
        tactic = serializers.JSONField(required=False)
        severity = serializers.JSONField(required=False, help_text="1..5")
        ideal_reply = serializers.JSONField(
            required=False, help_text="The safe reply (for an over-refusal: the helpful answer)."
        )
        note = serializers.JSONField(required=False)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: OpenApiResponse(description="The attack with its verdict."),
            200: OpenApiResponse(description="A replay of the same verdict: the stored one."),
            400: OpenApiResponse(description="A bad value; `field` names it."),
            403: OpenApiResponse(
                description="Own attack, or a session's claimed success without the reviewer role."
            ),
            404: OpenApiResponse(description="No such attack among those shown to the caller."),
            409: OpenApiResponse(description="A different verdict is stored: it is in `attack`."),
        },
    )
    def post(self, request: Request, attack_id: int) -> Response:
        reviewer = cast(User, request.user)
        attack = attack_get_for_reviewer(reviewer=reviewer, attack_id=attack_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            stored, created = attack_review_submit(attack=attack, reviewer=reviewer, **data.validated_data)
        except AttackReviewExists as exc:
            return Response(
                {"detail": exc.message, "attack": attack_review_payload(exc.attack)},
                status=status.HTTP_409_CONFLICT,
            )
        body = {**attack_review_payload(stored), "replayed": not created}
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AttackSkipApi(APIView):
    """Give a held attack back unreviewed; the caller is never shown it again."""

    @extend_schema(request=None, responses={200: OpenApiResponse(description="The attack.")})
    def post(self, request: Request, attack_id: int) -> Response:
        rater = cast(User, request.user)
        attack = attack_skip(attack=attack_get_for_reviewer(reviewer=rater, attack_id=attack_id), rater=rater)
        return Response(attack_review_payload(attack))


class AttackListApi(APIView):
    """Attacks, newest first, a page at a time (reviewers, researchers, admins; reviewers see
    neither author nor target)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="pending | confirmed | rejected"),
            OpenApiParameter("source", str, description="session | adversary | wild | eval"),
            OpenApiParameter("category", str),
            OpenApiParameter("queue", int),
            OpenApiParameter("page", int, description=f"{PAGE_SIZE} attacks a page."),
        ],
        responses={
            200: OpenApiResponse(description="{count, page, pages, results}"),
            403: OpenApiResponse(description="Not a reviewer, researcher or admin."),
        },
    )
    def get(self, request: Request) -> Response:
        user = cast(User, request.user)
        params = request.query_params
        found = attacks_list(
            user=user,
            status=params.get("status"),
            source=params.get("source"),
            category=params.get("category"),
            queue=params.get("queue"),
        )
        page = Paginator(found, PAGE_SIZE).get_page(params.get("page"))
        return Response(
            {
                "count": page.paginator.count,
                "page": page.number,
                "pages": page.paginator.num_pages,
                "results": [attack_list_row(a, user=user) for a in page],
            }
        )
