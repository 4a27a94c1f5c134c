"""scripts/plot_latencies.py draws the benchmarks' latency files and refuses other JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "plot_latencies.py"


def _run(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "chart.svg"
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, files), "-o", str(out)], capture_output=True, text=True
    )


def test_draws_one_solid_and_one_dashed_curve_per_system(tmp_path):
    files = []
    for name, base, rate in (("Preflab", 20.0, 206.2), ("Label Studio 1.23", 240.0, 16.3)):
        path = tmp_path / f"{rate}.json"
        path.write_text(
            json.dumps(
                {
                    "system": name,
                    "judgments_per_second": rate,
                    "next_ms": [base + i % 37 for i in range(3000)],
                    "submit_ms": [base * 0.9 + i % 29 for i in range(3000)],
                }
            )
        )
        files.append(path)
    result = _run(tmp_path, *files)
    assert result.returncode == 0, result.stderr
    svg = ElementTree.parse(tmp_path / "chart.svg").getroot()
    ns = "{http://www.w3.org/2000/svg}"
    lines = svg.findall(f"{ns}polyline")
    assert len(lines) == 4 and sum(1 for line in lines if line.get("stroke-dasharray")) == 2
    texts = " ".join(t.text or "" for t in svg.iter(f"{ns}text"))
    assert "Preflab: 206.2 judgments/s" in texts and "Label Studio 1.23: 16.3 judgments/s" in texts
    assert "50 ms aim" in texts
    # the curves end at 100% at the slowest request of each system
    last = lines[0].get("points").split()[-1]
    assert float(last.split(",")[1]) == 40.0  # TOP margin: share 1.0


def test_refuses_a_file_that_is_not_a_latency_file(tmp_path):
    other = tmp_path / "bench.json"
    other.write_text(json.dumps({"http": {"judgments_per_second": 1}}))
    result = _run(tmp_path, other)
    assert result.returncode == 2 and "not a --latencies file" in result.stderr
    assert not (tmp_path / "chart.svg").exists()
