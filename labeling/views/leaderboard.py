"""``/manage/leaderboard/`` (admins and researchers): the model leaderboard as a table, a chart of
the scores with their 95% intervals and a win-rate heat map, both inline SVG drawn here (no script,
no chart library). The same parameters and numbers as ``GET /api/v1/leaderboard/``."""

from __future__ import annotations

import math
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from labeling.errors import ApplicationError
from labeling.models import Queue
from labeling.selectors.leaderboard import MAX_ROUNDS, ROUNDS, leaderboard, leaderboard_params_clean

# The score chart: names left of the plot, the score right of it, one row per generator.
PLOT_LEFT, PLOT_WIDTH, ROW = 210, 420, 28
# The heat map: one square per pair, in steps from dark orange (the row lost nearly all) through
# white (even) to dark blue (the row won nearly all): (win rate below, fill, white text).
CELL, MAP_LEFT, MAP_TOP = 46, 210, 34
SHADES = (
    (0.2, "#8a3b00", True),
    (0.35, "#f0a870", False),
    (0.45, "#fbe0c8", False),
    (0.55, "#ffffff", False),
    (0.65, "#d6e6f7", False),
    (0.8, "#8fbbe8", False),
    (math.inf, "#0b4f96", True),
)
NEVER_MET = "#eef2f6"


def _tick_step(span: float) -> int:
    for step in (10, 25, 50, 100, 200, 250, 500):
        if span / step <= 6:
            return step
    return 1000


def score_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Coordinates of one dot per generator at its score, with a line across its interval."""
    if not rows:
        return {"rows": [], "ticks": [], "height": 0}
    low = min(min(r["lower"], r["score"]) for r in rows)
    high = max(max(r["upper"], r["score"]) for r in rows)
    step = _tick_step(max(high - low, 1.0))
    low, high = step * (low // step), step * (high // step + 1)

    def x(value: float) -> int:
        return PLOT_LEFT + round((value - low) / (high - low) * PLOT_WIDTH)

    drawn = [
        {
            **r,
            "y": 20 + i * ROW,
            "text_y": 24 + i * ROW,
            "x": x(r["score"]),
            "x_lower": x(r["lower"]),
            "x_upper": x(r["upper"]),
        }
        for i, r in enumerate(rows)
    ]
    bottom = 10 + len(rows) * ROW
    ticks = [{"x": x(v), "value": int(v)} for v in range(int(low), int(high) + 1, step)]
    return {
        "rows": drawn,
        "ticks": ticks,
        "axis_y": bottom,
        "label_y": bottom + 14,
        "height": bottom + 22,
        "name_x": PLOT_LEFT - 8,
        "score_x": PLOT_LEFT + PLOT_WIDTH + 12,
    }


def _shade(rate: float | None) -> tuple[str, bool]:
    """The fill for a win rate, and whether its text is white (each pair passes WCAG AA)."""
    if rate is None:
        return NEVER_MET, False
    return next((fill, white) for upper, fill, white in SHADES if rate < upper)


def heat_map(board: dict[str, Any]) -> dict[str, Any]:
    """One square per (row, column) generator pair, coloured by the row's observed win rate."""
    rows = board["generators"]
    cells = []
    for i, row in enumerate(rows):
        for j, column in enumerate(rows):
            rate, battles = board["win_rate"][i][j], board["battle_counts"][i][j]
            fill, white_text = _shade(rate)
            cells.append(
                {
                    "x": MAP_LEFT + j * CELL,
                    "y": MAP_TOP + i * CELL,
                    "text_x": MAP_LEFT + j * CELL + CELL // 2,
                    "text_y": MAP_TOP + i * CELL + CELL // 2 + 4,
                    "fill": fill,
                    "percent": round(100 * rate) if rate is not None else None,
                    "dark": white_text,
                    "row": row["name"],
                    "column": column["name"],
                    "battles": battles,
                    "self": i == j,
                }
            )
    size = len(rows) * CELL
    return {
        "cells": cells,
        "labels": [
            {"name": r["name"], "rank": r["rank"], "y": MAP_TOP + i * CELL + CELL // 2 + 4}
            for i, r in enumerate(rows)
        ],
        "columns": [{"rank": r["rank"], "x": MAP_LEFT + j * CELL + CELL // 2} for j, r in enumerate(rows)],
        "width": MAP_LEFT + size + 10,
        "height": MAP_TOP + size + 10,
        "label_x": MAP_LEFT - 8,
    }


class LeaderboardForm(forms.Form):
    """The scope fields as the page shows them; ``leaderboard_params_clean`` checks the values
    (the same check as the API's), and its error is put on the field it names."""

    queue = forms.CharField(required=False, label="Queue", widget=forms.Select)
    tag = forms.CharField(required=False, label="Prompt tag", help_text="Only prompts with this tag.")
    rounds = forms.CharField(
        required=False,
        label="Bootstrap rounds",
        help_text=f"{ROUNDS} to {MAX_ROUNDS}; more rounds, steadier intervals.",
        widget=forms.NumberInput(attrs={"min": ROUNDS, "max": MAX_ROUNDS, "placeholder": ROUNDS}),
    )
    include_human = forms.BooleanField(required=False, label="Include human-written responses")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [
            ("", "All queues"),
            *((str(pk), name) for pk, name in Queue.objects.values_list("pk", "name")),
        ]
        self.fields["queue"].widget.choices = sorted(choices, key=lambda c: (c[0] != "", c[1]))


@login_required
def manage_leaderboard(request: HttpRequest) -> HttpResponse:
    """Scores of the generators, best first, for the queue and tag chosen (all by default)."""
    user: Any = request.user
    if not getattr(user, "can_export", False):  # admins and researchers
        raise PermissionDenied("Only admins and researchers see the leaderboard.")
    form = LeaderboardForm(data=request.GET)
    form.is_valid()  # only to render the values given; the selector below is the check
    try:
        params = leaderboard_params_clean(request.GET)
    except ApplicationError as error:
        if error.field in form.fields:
            form.add_error(error.field, error.message.removeprefix(f"{error.field}: "))
        else:
            form.add_error(None, error.message)
        return render(request, "labeling/manage_leaderboard.html", {"form": form}, status=400)
    board = leaderboard(params)
    context = {
        "form": form,
        "board": board,
        "scores": score_chart(board["generators"]),
        "heat": heat_map(board),
    }
    return render(request, "labeling/manage_leaderboard.html", context)
