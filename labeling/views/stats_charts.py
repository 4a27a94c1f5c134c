"""Coordinates for the queue dashboard's agreement and side-bias charts, drawn by the template as
inline SVG (no script, no chart library), like the throughput chart."""

from __future__ import annotations

from typing import Any

#: Side-bias p-values under this are drawn as significant.
SIGNIFICANT_P = 0.05

ALPHA_TOP, ALPHA_HALF = 10, 90  # y of alpha = 1, and the pixels from alpha = 0 to +-1
ALPHA_STEP = 64  # x pixels per criterion
ALPHA_MIN_WIDTH = 576  # as wide as the throughput chart, so both draw at one scale


def _alpha_y(value: float) -> int:
    return round(ALPHA_TOP + (1 - max(-1.0, min(1.0, value))) * ALPHA_HALF)


def alpha_chart(agreement: dict[str, Any]) -> dict[str, Any]:
    """One bar per measure from 0 to its Krippendorff's alpha (-1..1), with its 95% interval as
    an error bar; measures without a value get an empty slot and say why in their title."""
    zero = _alpha_y(0.0)
    bars = []
    for i, row in enumerate(agreement["criteria"]):
        alpha = row["krippendorff_alpha"]
        x = 40 + i * ALPHA_STEP
        bar: dict[str, Any] = {"key": row["key"], "x": x, "cx": x + 20, "label_x": x + 20, "alpha": alpha}
        if alpha["value"] is not None:
            y = _alpha_y(alpha["value"])
            bar |= {"y": min(y, zero), "h": max(abs(zero - y), 1)}
            if alpha["ci95"]:
                bar |= {"ci_top": _alpha_y(alpha["ci95"][1]), "ci_bottom": _alpha_y(alpha["ci95"][0])}
        bars.append(bar)
    return {
        "bars": bars,
        "width": max(ALPHA_MIN_WIDTH, 40 + len(bars) * ALPHA_STEP),
        "zero": zero,
        "top": _alpha_y(1.0),
        "bottom": _alpha_y(-1.0),
    }


SIDE_LEFT, SIDE_WIDTH, SIDE_ROW = 130, 400, 22


def side_chart(position_bias: dict[str, Any]) -> dict[str, Any]:
    """One row per rater: the share of their decided pairs won by the left (first shown)
    response, from the 50% line, marked when the binomial test says p < ``SIGNIFICANT_P``."""
    middle = SIDE_LEFT + SIDE_WIDTH // 2
    rows = []
    for i, rater in enumerate(r for r in position_bias["raters"] if r["left_share"] is not None):
        end = SIDE_LEFT + round(rater["left_share"] * SIDE_WIDTH)
        rows.append(
            {
                "rater": rater["rater"],
                "y": 10 + i * SIDE_ROW,
                "text_y": 24 + i * SIDE_ROW,
                "x": min(middle, end),
                "w": max(abs(end - middle), 1),
                "percent": round(100 * rater["left_share"]),
                "p_value": rater["p_value"],
                "significant": rater["p_value"] is not None and rater["p_value"] < SIGNIFICANT_P,
            }
        )
    return {
        "rows": rows,
        "height": 40 + len(rows) * SIDE_ROW,
        "middle": middle,
        "left": SIDE_LEFT,
        "right": SIDE_LEFT + SIDE_WIDTH,
        "axis_y": 30 + len(rows) * SIDE_ROW,
    }
