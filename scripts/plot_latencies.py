#!/usr/bin/env python3
"""Draw the latency distributions that the queue benchmarks measured, as one SVG.

Input: JSON files written with ``--latencies`` by ``manage.py bench_queue`` and by
``scripts/bench_label_studio.py`` (``system``, ``judgments_per_second``, and every request's
``next_ms`` and ``submit_ms``). Output: for each system, the share of ``next`` requests (solid)
and of judgment submissions (dashed) answered within x ms, x on a log scale, with the 50 ms aim
marked. Standard library only::

    python manage.py bench_queue --latencies var/preflab.json
    python3 scripts/bench_label_studio.py --latencies var/ls.json
    python3 scripts/plot_latencies.py var/preflab.json var/ls.json -o docs/queue-latency.svg
"""

from __future__ import annotations

import argparse
import json
import math
from html import escape
from pathlib import Path
from typing import Any

WIDTH, HEIGHT = 720, 360
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 40, 50
COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df"]
AIM_MS = 50.0


def _x(ms: float, lo: float, hi: float) -> float:
    span = math.log10(hi) - math.log10(lo)
    return LEFT + (math.log10(max(ms, lo)) - math.log10(lo)) / span * (WIDTH - LEFT - RIGHT)


def _y(share: float) -> float:
    return TOP + (1 - share) * (HEIGHT - TOP - BOTTOM)


def _curve(values: list[float], lo: float, hi: float) -> str:
    ordered = sorted(values)
    n = len(ordered)
    # One point per 0.5% of requests is plenty for 720 pixels, and keeps the file small.
    step = max(1, n // 200)
    points = [(ordered[i], (i + 1) / n) for i in range(0, n, step)] + [(ordered[-1], 1.0)]
    return " ".join(f"{_x(ms, lo, hi):.1f},{_y(share):.1f}" for ms, share in points)


def render(runs: list[dict[str, Any]], title: str) -> str:
    every = [v for run in runs for key in ("next_ms", "submit_ms") for v in run[key]]
    lo = 10 ** math.floor(math.log10(max(min(every), 0.1)))
    hi = 10 ** math.ceil(math.log10(max(every)))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    decade = lo
    while decade <= hi:
        for mult in (1, 2, 5):
            ms = decade * mult
            if lo <= ms <= hi:
                x = _x(ms, lo, hi)
                out.append(
                    f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>'
                )
                out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{ms:g}</text>')
        decade *= 10
    for share in (0, 0.25, 0.5, 0.75, 1):
        y = _y(share)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{share:.0%}</text>')
    if lo <= AIM_MS <= hi:
        x = _x(AIM_MS, lo, hi)
        out.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#555" stroke-dasharray="2,3"/>'
        )
        out.append(f'<text x="{x + 4:.1f}" y="{TOP + 26}" fill="#555">50 ms aim for next p99</text>')
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
        "latency, ms (log scale): share of requests answered within it</text>"
    )
    for i, run in enumerate(runs):
        color = COLORS[i % len(COLORS)]
        for key, dash in (("next_ms", ""), ("submit_ms", ' stroke-dasharray="6,4"')):
            out.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} '
                f'points="{_curve(run[key], lo, hi)}"/>'
            )
        label = f"{run['system']}: {run['judgments_per_second']:g} judgments/s (solid next, dashed submit)"
        y = HEIGHT - BOTTOM - 14 - 16 * (len(runs) - 1 - i)
        out.append(f'<rect x="{WIDTH - RIGHT - 390}" y="{y - 10}" width="12" height="4" fill="{color}"/>')
        out.append(f'<text x="{WIDTH - RIGHT - 372}" y="{y - 5}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("files", nargs="+", help="latency JSON files (--latencies of the benchmarks)")
    parser.add_argument("-o", "--output", required=True, help="SVG file to write")
    parser.add_argument("--title", default="Queue latency, 8 raters with no think time, PostgreSQL")
    args = parser.parse_args()
    runs = []
    for name in args.files:
        run = json.loads(Path(name).read_text(encoding="utf-8"))
        missing = {"system", "judgments_per_second", "next_ms", "submit_ms"} - set(run)
        if missing or not run.get("next_ms"):
            parser.error(
                f"{name}: not a --latencies file of a benchmark (missing {sorted(missing) or 'next_ms'})"
            )
        runs.append(run)
    Path(args.output).write_text(render(runs, args.title), encoding="utf-8")


if __name__ == "__main__":
    main()
