"""scripts/gpu_pack.py (chunks, checks, staging) and scripts/gpu_check.sh, dry-run on the CPU.

The GPU check runs once in a while on a borrowed machine; these keep it from rotting in between.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _gpu_pack():
    spec = importlib.util.spec_from_file_location("gpu_pack", ROOT / "scripts" / "gpu_pack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_pack"] = module
    spec.loader.exec_module(module)
    return module


gp = _gpu_pack()


def _manifest(source: Path, tmp_path: Path, chunk: int) -> dict:
    folders = [tmp_path / ".gpu" / f"model-{i}" for i in range(1, 9)]
    parts = gp.split(source, folders, chunk)
    return {"model": {"wheel": source.name, "sha256": gp.sha256(source), "parts": parts}}


def test_split_stage_and_join_give_back_the_same_bytes(tmp_path):
    source = tmp_path / "model.whl"
    data = os.urandom(10_000)
    source.write_bytes(data)
    manifest = _manifest(source, tmp_path, 4096)
    assert [p["bytes"] for p in manifest["model"]["parts"]] == [4096, 4096, 1808]
    assert sorted(p.name for p in (tmp_path / ".gpu").iterdir()) == ["model-1", "model-2", "model-3"]

    stage = tmp_path / "stage"
    # One call per folder: each carries its chunk and stages it outside the checkout.
    assert gp.stage_parts(tmp_path / ".gpu", stage) == [f"model.whl.part{i}" for i in (1, 2, 3)]
    joined = gp.join(manifest, stage / "parts", stage / "model" / "model.whl")
    assert joined.read_bytes() == data


def test_a_missing_or_damaged_chunk_is_named_and_nothing_is_joined(tmp_path):
    source = tmp_path / "model.whl"
    source.write_bytes(os.urandom(9000))
    manifest = _manifest(source, tmp_path, 4096)
    stage = tmp_path / "stage"
    gp.stage_parts(tmp_path / ".gpu", stage)
    target = stage / "model" / "model.whl"

    (stage / "parts" / "model.whl.part2").unlink()
    with pytest.raises(gp.PackError, match=r"not staged on this machine: model\.whl\.part2"):
        gp.join(manifest, stage / "parts", target)

    gp.stage_parts(tmp_path / ".gpu", stage)
    with (stage / "parts" / "model.whl.part3").open("r+b") as fh:
        fh.write(b"\x00")
    with pytest.raises(gp.PackError, match=r"part3 is damaged"):
        gp.join(manifest, stage / "parts", target)
    assert not target.exists() and not target.with_name("model.whl.tmp").exists()


def test_too_few_folders_for_the_chunks_is_refused(tmp_path):
    source = tmp_path / "model.whl"
    source.write_bytes(b"x" * 100)
    with pytest.raises(gp.PackError, match="needs 4 chunks of 30"):
        gp.split(source, [tmp_path / "a", tmp_path / "b"], 30)


def test_every_packed_distribution_is_installed_here():
    """The pack takes this venv's versions: each name must resolve (a typo would surface only there)."""
    import importlib.metadata

    for name in gp.WHEELS:
        assert importlib.metadata.version(name)


@pytest.mark.model
def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    """The whole script, without CUDA: the gpu tests skip, the benchmark runs with tiny settings."""
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PREFLAB_GPU_CHECK_CPU": "1",
        "PREFLAB_GPU_CHECK_OUT": str(tmp_path),
        "PREFLAB_GPU_STAGE": str(tmp_path / "stage"),
    }
    env.pop("PREFLAB_REQUIRE_CUDA", None)
    tiny = [
        "--prompts",
        "2",
        "--samples",
        "2",
        "--max-new-tokens",
        "2",
        "--naive-prompts",
        "1",
        "--skip-first-load",
    ]
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), *tiny],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "cpu (dry run)" in (tmp_path / "versions.txt").read_text()
    assert "2 skipped" in (tmp_path / "pytest.txt").read_text()
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["settings"]["prompts"] == 2 and bench["runner"]["sequences"] == 4
    assert bench["speedup"] > 0
