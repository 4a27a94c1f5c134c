"""``GET /api/v1/leaderboard/`` (researchers and admins): Bradley-Terry scores of the generators
from every pairwise outcome, with bootstrap intervals, overall, per queue or per prompt tag. The
same parameters and numbers as ``/manage/leaderboard/`` (``labeling.selectors.leaderboard``)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsResearcherOrAdmin
from labeling.selectors.leaderboard import MAX_ROUNDS, ROUNDS, leaderboard, leaderboard_params_clean

_number = serializers.FloatField(allow_null=True)
_row = inline_serializer(
    "LeaderboardGenerator",
    {
        "id": serializers.IntegerField(),
        "name": serializers.CharField(),
        "backend": serializers.CharField(),
        "score": serializers.FloatField(
            help_text="Elo-like: scores average 1000; 400 points = odds of 10 to 1."
        ),
        "lower": serializers.FloatField(help_text="2.5 percentile of the bootstrap scores."),
        "upper": serializers.FloatField(help_text="97.5 percentile of the bootstrap scores."),
        "rank": serializers.IntegerField(help_text="1 = best; equal scores share a rank."),
        "rank_best": serializers.IntegerField(help_text="1 + generators whose interval lies wholly above."),
        "rank_worst": serializers.IntegerField(help_text="n - generators whose interval lies wholly below."),
        "battles": serializers.IntegerField(),
        "wins": serializers.IntegerField(),
        "ties": serializers.IntegerField(),
        "losses": serializers.IntegerField(),
        "win_rate": serializers.FloatField(help_text="(wins + ties / 2) / battles"),
    },
)
LeaderboardSerializer = inline_serializer(
    "Leaderboard",
    {
        "scope": inline_serializer(
            "LeaderboardScope",
            {
                "queue": serializers.IntegerField(allow_null=True),
                "tag": serializers.CharField(allow_null=True),
                "include_human": serializers.BooleanField(),
                "rounds": serializers.IntegerField(),
                "seed": serializers.IntegerField(),
            },
        ),
        "method": serializers.DictField(
            help_text="The model, scale, ties, rankings, prior and interval, in words."
        ),
        "battles": serializers.IntegerField(help_text="Battles between two different generators in scope."),
        "generators": serializers.ListField(child=_row, help_text="Best first."),
        "win_rate": serializers.ListField(
            child=serializers.ListField(child=_number),
            help_text="[i][j]: share of battles row i won against column j (ties as halves), in the "
            "order of generators; null on the diagonal and where they never met.",
        ),
        "battle_counts": serializers.ListField(
            child=serializers.ListField(child=serializers.IntegerField()),
            help_text="[i][j]: battles between generators i and j, in the order of generators.",
        ),
    },
)


class LeaderboardApi(APIView):
    permission_classes = [IsResearcherOrAdmin]

    @extend_schema(
        parameters=[
            OpenApiParameter("queue", int, description="Only judgments from this queue."),
            OpenApiParameter("tag", str, description="Only prompts carrying this tag."),
            OpenApiParameter(
                "rounds", int, description=f"Bootstrap rounds, {ROUNDS}..{MAX_ROUNDS} (default {ROUNDS})."
            ),
            OpenApiParameter(
                "include_human", bool, description="Rate human-written responses too (default false)."
            ),
            OpenApiParameter("seed", int, description="Seed of the bootstrap draws (default 0)."),
        ],
        responses={200: LeaderboardSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(leaderboard(leaderboard_params_clean(request.query_params)))
