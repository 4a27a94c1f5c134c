"""The documentation is checked like code.

- docs/api.md's Python client runs the whole loop (import, rubric, queue, judge until 204, export,
  download) against a live server, as a separate process that knows only the base URL and three
  logins, exactly as a reader would run it.
- Every relative link in the README, CONTRIBUTING, CHANGELOG and docs/ points to a file in the
  repository (and, for a link into a Markdown file with an #anchor, to one of its headings).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.password_validation import validate_password
from rest_framework.test import APIClient

from comparisons.models import Candidate
from export.models import ExportRun
from labeling.models import Judgment, Queue
from tests.factories import AdminFactory, RaterFactory, ResearcherFactory

ROOT = Path(__file__).resolve().parent.parent
API_DOC = ROOT / "docs" / "api.md"
#: Passwords the client logs in with; they must pass the project's password validators.
PASSWORD = "loop-client-7-horses"
RIGHT_ANSWERS = {
    "The capital of France is Paris.",
    "7 is a prime number.",
    "A spider has eight legs.",
}
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def _client_code() -> str:
    blocks = PYTHON_BLOCK.findall(API_DOC.read_text())
    assert len(blocks) == 1, f"docs/api.md should hold exactly one ```python block, found {len(blocks)}"
    return blocks[0]


@pytest.mark.timeout(180)
def test_the_api_client_in_the_docs_runs_the_whole_loop(live_server, tmp_path):
    validate_password(PASSWORD)
    AdminFactory(username="doc-admin", password=PASSWORD)
    rater = RaterFactory(username="doc-rater", password=PASSWORD)
    researcher = ResearcherFactory(username="doc-researcher", password=PASSWORD)
    script = tmp_path / "loop.py"
    script.write_text(_client_code())

    env = {
        "PATH": "/usr/bin:/bin",
        "PREFLAB_URL": live_server.url,
        "PREFLAB_ADMIN": "doc-admin",
        "PREFLAB_ADMIN_PASSWORD": PASSWORD,
        "PREFLAB_RATER": "doc-rater",
        "PREFLAB_RATER_PASSWORD": PASSWORD,
        "PREFLAB_RESEARCHER": "doc-researcher",
        "PREFLAB_RESEARCHER_PASSWORD": PASSWORD,
        "PREFLAB_RUN": "test",
    }
    # -I -S: no site-packages and no project on the path, so the client runs on the standard library.
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(script)], env=env, capture_output=True, text=True, timeout=150
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "prompts: 3 new, 0 already there" in out
    assert "responses: 6 new, 0 already there" in out
    assert "3 judgments; nothing left for doc-rater" in out

    # The rater's judgments are stored, each preferring the right answer in the order it was shown.
    queue = Queue.objects.get(name="api-loop-test")
    judgments = list(Judgment.objects.filter(assignment__item__queue=queue).select_related("assignment"))
    assert len(judgments) == 3
    for judgment in judgments:
        assert judgment.assignment.rater_id == rater.pk
        shown, preference = judgment.assignment.shown_order, judgment.preference
        assert preference in (-2, 2)
        preferred = shown[0] if preference < 0 else shown[1]
        assert Candidate.objects.get(pk=preferred).text in RIGHT_ANSWERS
        assert judgment.criteria["helpful"] == judgment.preference

    # The researcher's snapshot has one TRL row per judgment, the right answer always chosen.
    run = ExportRun.objects.get(name="api-loop-test")
    assert run.status == ExportRun.Status.SUCCEEDED
    assert run.created_by_id == researcher.pk
    api = APIClient()
    api.force_authenticate(researcher)
    response = api.get(f"/api/v1/exports/{run.pk}/download/", {"file": "data/train.jsonl"})
    assert response.status_code == 200
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(rows) == 3
    for row in rows:
        chosen, rejected = row["chosen"][-1]["content"], row["rejected"][-1]["content"]
        assert chosen in RIGHT_ANSWERS and rejected not in RIGHT_ANSWERS
        assert row["margin"] == 2
        assert f"chosen {chosen!r} over {rejected!r} (margin {row['margin']})" in out


# ---------------------------------------------------------------------------------------- links

DOCS = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "CHANGELOG.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*$", text, re.M)}


def _links(path: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", path.read_text()))


@pytest.mark.parametrize("doc", [d for d in DOCS if d.exists()], ids=lambda d: str(d.relative_to(ROOT)))
def test_relative_links_point_into_the_repository(doc):
    broken = []
    for target in _links(doc):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (doc.parent / file_part).resolve() if file_part else doc
        if ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_documentation_set_exists_and_names_no_outside_file():
    for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md", "LICENSE", "docs/api.md"):
        assert (ROOT / name).is_file(), name
    for doc in DOCS:
        if doc.exists():
            assert "DESIGN.md" not in doc.read_text(), f"{doc.name} refers to a file outside the repository"
