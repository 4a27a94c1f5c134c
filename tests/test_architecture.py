"""The structure the architecture doc promises, checked: the app dependency order (import-linter
contracts in pyproject.toml), the shared kernel, and module size."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("labeling", "comparisons", "model_runner", "export")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
#: A module past this many lines is split along its seams (docs/architecture.md).
MAX_MODULE_LINES = 400


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The four apps and pyproject.toml, copied so an import can be planted in them."""
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # planted by the test\n")


def test_the_import_contracts_hold_on_the_tree():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_unchanged_copy_passes(tree_copy):
    result = _lint_imports(tree_copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # comparisons sits at the bottom: it may not reach up to the apps above it.
        (
            "comparisons/models.py",
            "from export.models import ExportRun",
            "comparisons.models -> export.models",
        ),
        (
            "comparisons/selectors.py",
            "from labeling.models import Queue",
            "comparisons.selectors -> labeling",
        ),
        (
            "model_runner/services/jobs.py",
            "import labeling.services",
            "model_runner.services.jobs -> labeling",
        ),
        ("labeling/views.py", "from export import selectors", "labeling.views -> export.selectors"),
        # The shared kernel imports no app.
        ("labeling/errors.py", "from labeling.models import User", "labeling.errors -> labeling.models"),
        ("labeling/audit.py", "from labeling.models import AuditEvent", "labeling.audit -> labeling.models"),
        # torch only behind the backends' door.
        ("export/selectors.py", "import torch", "export.selectors -> torch"),
    ],
)
def test_a_planted_wrong_way_import_breaks_a_contract(tree_copy, module, line, broken):
    target = tree_copy / module
    if not target.exists():  # a module split into a package keeps its name as the package
        module = module.removesuffix(".py") + "/__init__.py"
    _plant(tree_copy, module, line)
    result = _lint_imports(tree_copy)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert broken in result.stdout, result.stdout


def _python_modules() -> list[Path]:
    found = []
    for app in (*APPS, "scripts"):
        for path in (ROOT / app).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if "migrations" in parts or path.name.startswith("bench_"):
                continue  # generated, or benchmarks (one long script each)
            found.append(path)
    return found


def test_no_module_is_over_the_size_limit():
    lines = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in _python_modules()}
    assert len(lines) > 50
    over = {path: n for path, n in lines.items() if n > MAX_MODULE_LINES}
    assert over == {}, f"split these along their seams: {over}"


#: The one module allowed to write each lifecycle field (docs/architecture.md, "Status fields").
STATUS_WRITERS = {
    "status": {
        "labeling/services/assignments.py",  # Assignment.status
        "model_runner/services/job_status.py",  # GenerationJob.status
        "export/services/runs.py",  # ExportRun.status
        "export/services/reward_checks.py",  # RewardCheck.status
        "labeling/services/queue_admin.py",  # Queue.status (pause, resume, close, reopen)
        "comparisons/services/import_jobs.py",  # ImportJob.status
        "labeling/services/sessions.py",  # Session.status, Turn.status
        "labeling/services/redteam_reviews.py",  # Attack.status (confirm, reject)
        "labeling/services/adversary.py",  # AdversaryJob.status
        "labeling/services/redteam_eval.py",  # RedteamEvalRun.status
    },
    "claimed": {"labeling/services/assignments.py"},
    "judged": {"labeling/services/assignments.py"},
    "lifted_at": {"labeling/services/pauses.py"},  # RaterQueuePause: open until lifted
    # Attack's review lease: only the review claim, skip and verdict.
    "leased_to": {"labeling/services/redteam_reviews.py"},
    "lease_expires_at": {"labeling/services/redteam_reviews.py"},
}


def _field_writes(path: Path) -> set[str]:
    """The lifecycle fields a module writes: ``obj.<field> = ...`` or ``.update(<field>=...)``."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found |= {t.attr for t in targets if isinstance(t, ast.Attribute) and t.attr in STATUS_WRITERS}
        elif (
            isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
        ):
            found |= {k.arg for k in node.keywords if k.arg in STATUS_WRITERS}
    return found


def test_each_status_and_counter_is_written_in_one_module_only():
    writers: dict[str, set[str]] = {field: set() for field in STATUS_WRITERS}
    for path in _python_modules():
        if "management" in path.parts:
            continue  # benchmark and demo commands build throw-away rows of their own
        for field in _field_writes(path):
            writers[field].add(path.relative_to(ROOT).as_posix())
    assert writers == STATUS_WRITERS


def test_the_status_check_sees_a_write(tmp_path):
    module = tmp_path / "somewhere.py"
    module.write_text("def f(a, qs):\n    a.status = 'x'\n    qs.update(claimed=1)\n")
    assert _field_writes(module) == {"status", "claimed"}
