"""``GET /api/v1/wellbeing/exposure/`` (admins): per rater and UTC day of the last 14 days, how
many disturbing items they saw, as counts (never content); the page is ``/manage/wellbeing/``."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.permissions import IsAdminRole
from labeling.selectors.wellbeing import wellbeing_exposure


class WellbeingExposureApi(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(
        responses={
            200: OpenApiResponse(
                description="{days: [YYYY-MM-DD], raters: [{rater, opted_in, total, peak, days: "
                "[{day, assignments, attack_exposures, redteam_turns, total}]}]}"
            )
        }
    )
    def get(self, request: Request) -> Response:
        return Response(wellbeing_exposure())
