"""Coordinates of ``/manage/redteam/``'s rate charts, drawn by the template as inline SVG (no script,
no chart library), like the leaderboard's: one horizontal bar per generator and group (all test
attacks, each category, each tactic) from 0 to its rate, with its 95% Wilson interval as an error
bar; with two generators side by side, their two bars of a group sit together."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

PLOT_LEFT, PLOT_WIDTH = 230, 360  # x of 0%, and the pixels from 0% to 100%
BAR, BAR_GAP, GROUP_GAP, TOP = 14, 4, 14, 24
LABEL_ROW = 16  # a group's title sits on its own row above its bars (long titles never overlap them)
#: Measures charted, with their titles.
MEASURES = (("attack_success", "Attack success rate"), ("over_refusal", "Over-refusal rate"))


def _x(rate: float) -> int:
    return PLOT_LEFT + round(max(0.0, min(1.0, rate)) * PLOT_WIDTH)


def rate_groups(summaries: Sequence[dict[str, Any]], measure: str) -> list[dict[str, Any]]:
    """The chart's groups from generator summaries (``redteam_rates`` rows): all test attacks first,
    then each category, then each tactic, each with one entry per generator (None where that
    generator has no reviewed attempt in the group)."""
    groups: list[dict[str, Any]] = [
        {"label": "All test attacks", "bars": [(s["name"], s[measure]) for s in summaries]}
    ]
    for key, prefix in (("by_category", "Category"), ("by_tactic", "Tactic")):
        labels: dict[str, str] = {}
        for s in summaries:
            labels.update((row["key"], row["label"]) for row in s[key])
        for group in sorted(labels, key=lambda g: labels[g]):
            bars = []
            for s in summaries:
                row = next((r for r in s[key] if r["key"] == group), None)
                bars.append((s["name"], row[measure] if row else None))
            groups.append({"label": f"{prefix}: {labels[group]}", "bars": bars})
    return groups


def rate_chart(groups: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Coordinates of each bar (its series is the generator's position, for its colour) and its
    interval, group by group; a bar without reviewed attempts says so in place of a bar."""
    drawn, y = [], TOP
    for group in groups:
        label_y = y + 10
        y += LABEL_ROW
        bars = []
        for series, (name, rate) in enumerate(group["bars"]):
            bar: dict[str, Any] = {
                "name": name,
                "series": series,
                "y": y,
                "text_y": y + 11,
                "mid": y + BAR // 2,
            }
            if rate is None or rate["rate"] is None:
                bar["empty"] = True
            else:
                low, high = rate["ci95"]
                bar |= {
                    "empty": False,
                    "w": max(_x(rate["rate"]) - PLOT_LEFT, 1),
                    "x_low": _x(low),
                    "x_high": _x(high),
                    "percent": round(100 * rate["rate"], 1),
                    "low": round(100 * low, 1),
                    "high": round(100 * high, 1),
                    "count": rate["count"],
                    "trials": rate["trials"],
                }
            bars.append(bar)
            y += BAR + BAR_GAP
        drawn.append({"label": group["label"], "label_y": label_y, "bars": bars})
        y += GROUP_GAP
    ticks = [{"x": _x(v / 100), "value": v} for v in range(0, 101, 25)]
    return {
        "groups": drawn,
        "ticks": ticks,
        "axis_y": y,
        "label_y": y + 14,
        "height": y + 22,
        "left": PLOT_LEFT,
        "name_x": PLOT_LEFT - 8,
        "value_x": PLOT_LEFT + PLOT_WIDTH + 10,
    }


def rate_charts(summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One chart per measure (attack success, over-refusal) of these generator summaries."""
    return [
        {"key": key, "title": title, **rate_chart(rate_groups(summaries, key))} for key, title in MEASURES
    ]
