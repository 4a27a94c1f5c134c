"""``/manage/wellbeing/`` (admins): how much disturbing material each rater saw per day over the
last 14 days, as counts (never content), in a table and a bar chart drawn as inline SVG (no
script), like the other ``/manage/`` charts. The same numbers as ``GET /api/v1/wellbeing/exposure/``."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling.models import User
from labeling.selectors.wellbeing import wellbeing_exposure

CHART_LEFT, CHART_STEP, CHART_BAR, CHART_TOP, CHART_HEIGHT = 30, 38, 26, 10, 100


def exposure_chart(exposure: dict[str, Any]) -> dict[str, Any]:
    """One bar per day: disturbing items seen by all raters together, scaled to the peak day."""
    totals = [0] * len(exposure["days"])
    for rater in exposure["raters"]:
        for i, day in enumerate(rater["days"]):
            totals[i] += day["total"]
    peak = max(totals, default=0)
    bars = []
    for i, (day, n) in enumerate(zip(exposure["days"], totals, strict=True)):
        h = round(CHART_HEIGHT * n / peak) if peak else 0
        bars.append(
            {
                "day": day,
                "label": day[5:],
                "n": n,
                "x": CHART_LEFT + i * CHART_STEP,
                "y": CHART_TOP + CHART_HEIGHT - h,
                "h": h,
                "label_x": CHART_LEFT + i * CHART_STEP + CHART_BAR // 2,
            }
        )
    return {"bars": bars, "peak": peak, "width": CHART_LEFT + len(bars) * CHART_STEP, "bar": CHART_BAR}


@login_required
def manage_wellbeing(request: HttpRequest) -> HttpResponse:
    user: User = request.user  # type: ignore[assignment]
    if not user.is_admin_role:
        raise PermissionDenied("Only admins see raters' exposure.")
    exposure = wellbeing_exposure()
    return render(
        request, "labeling/manage_wellbeing.html", {"exposure": exposure, "chart": exposure_chart(exposure)}
    )
