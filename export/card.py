"""The dataset card: ``README.md`` with the Hugging Face YAML header, so ``load_dataset(folder)`` works.

The header declares ``configs`` (``data_files`` per split: the Parquet files when written, else
the JSONL files), ``dataset_info.features`` (from the view's Arrow schema, in the YAML shape
``datasets`` itself writes) and ``splits``. The prose says what the format and type are, the
columns, how to load it, the split rule, the filters, the rubric text (for ``sft``: the session
templates), rater counts and agreement, the composition (judgments, raters, the largest share of
one rater and agreement per prompt tag: ``export.composition``), and how many judgments ranked
conversation turns (those of abandoned branches included). The card holds no timestamp: the same export of the same data
gives the same card.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from export.composition import composition_card_lines
from export.splits import REDTEAM_PAIRS_SPLIT_DOC, SPLIT_DOC, SPLIT_ORDER
from labeling.models import Rubric, SessionTemplate


def _q(value: str) -> str:
    """A YAML scalar: JSON strings are valid YAML and never re-typed (``1.0`` stays a string)."""
    return json.dumps(value, ensure_ascii=False)


_DTYPES = {"double": "float64", "float": "float32", "halffloat": "float16"}


def _dtype(t: pa.DataType) -> str:
    return _DTYPES.get(str(t), str(t))


def _body(t: pa.DataType) -> list[str]:
    if pa.types.is_list(t):
        inner = t.value_type
        if pa.types.is_struct(inner):
            return ["list:", *_struct_items(inner)]
        if pa.types.is_list(inner):
            return ["list:", *("  " + line for line in _body(inner))]
        return [f"list: {_dtype(inner)}"]
    if pa.types.is_struct(t):
        return ["struct:", *_struct_items(t)]
    return [f"dtype: {_dtype(t)}"]


def _struct_items(t: pa.StructType) -> list[str]:
    lines: list[str] = []
    for i in range(t.num_fields):
        f = t.field(i)
        lines.append(f"- name: {f.name}")
        lines.extend("  " + line for line in _body(f.type))
    return lines


def features_yaml(schema: pa.Schema) -> list[str]:
    """``dataset_info.features`` lines for a schema, as ``datasets.Features._to_yaml_list`` shapes them."""
    lines: list[str] = []
    for f in schema:
        lines.append(f"- name: {f.name}")
        lines.extend("  " + line for line in _body(f.type))
    return lines


def _split_sort(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def dataset_card(
    *,
    name: str,
    view: Any,
    spec: Any,
    files: list[dict[str, Any]],
    facts: dict[str, Any],
    rubrics: list[Rubric],
    templates: list[SessionTemplate] | None = None,
    redteam: dict[str, Any] | None = None,
) -> str:
    """The README.md text (see the module docstring). ``redteam``: the red-team facts of an export
    holding red-team data (``export.services.snapshot._redteam_facts``), given a section of their own."""
    sft = view.name == "sft"
    attacks = view.name in ("redteam_eval", "redteam_attempts")
    kind = "parquet" if "parquet" in spec.options["files"] else "jsonl"
    split_rows: dict[str, int] = {}
    for f in files:
        split_rows[f["split"]] = f["rows"]
    splits = sorted((s for s, n in split_rows.items() if n > 0 or s == "train"), key=_split_sort)
    if attacks and any(split_rows[s] for s in splits):
        # The red-team test set lives in ``test``: an empty ``train`` would be a split of no data.
        splits = [s for s in splits if split_rows[s] > 0]
    data_files = [f for f in files if f["kind"] == kind and f["split"] in splits]
    # num_bytes: the size of the files ``load_dataset`` reads for the split, as written.
    split_bytes = {s: sum(f["bytes"] for f in data_files if f["split"] == s) for s in splits}

    y = ["---", "license: other", f"pretty_name: {_q(name)}", "tags:", "- preflab", "- rlhf"]
    y.append("- sft" if sft else "- red-teaming" if attacks else "- preference")
    if redteam is not None and not attacks:
        y.append("- red-teaming")
    if view.name in ("trl", "rankings", "sft"):
        y.append("- trl")
    y += ["configs:", "- config_name: default", "  data_files:"]
    for f in sorted(data_files, key=lambda f: _split_sort(f["split"])):
        y += [f"  - split: {f['split']}", f"    path: {_q(f['path'])}"]
    y += ["dataset_info:", "  features:"]
    y += ["  " + line for line in features_yaml(view.schema)]
    y += ["  splits:"]
    for split in splits:
        y += [
            f"  - name: {split}",
            f"    num_bytes: {split_bytes[split]}",
            f"    num_examples: {split_rows[split]}",
        ]
    y.append("---")

    p = [
        "",
        f"# {name}",
        "",
        f"{'Conversations' if sft else 'Red-team data' if attacks else 'Preference data'} exported from "
        f"Preflab: **{view.title}** view.",
        "",
        view.description,
        "",
    ]
    p += [
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("path/to/this/folder")',
    ]
    if view.name == "trl" or (view.name == "rankings" and spec.options.get("pairs")):
        p += [
            "",
            "# TRL: RewardTrainer(model=..., train_dataset=ds['train'], ...) or DPOTrainer(...)",
        ]
    if sft:
        p += ["", "# TRL: SFTTrainer(model=..., train_dataset=ds['train'], ...)"]
    p += ["```", ""]
    p += ["## Columns", "", "| column | type |", "|---|---|"]
    p += [f"| `{f.name}` | `{f.type}` |".replace("double", "float64") for f in view.schema]
    p += [
        "",
        "## Splits",
        "",
        (
            f"Split by conversation, never by turn (a session's row is in the split of its prompts): {SPLIT_DOC}."
            if sft
            else _attack_split_note(view.name)
            if attacks
            else f"Split by prompt, never by pair: {SPLIT_DOC}."
            + (f" Red-team pairs: {REDTEAM_PAIRS_SPLIT_DOC}." if redteam is not None else "")
        ),
        "",
        "| split | rows |",
        "|---|---|",
    ]
    p += [f"| {s} | {split_rows[s]} |" for s in splits]
    if attacks:
        p += ["", "## Provenance", "", *_attack_provenance(spec, facts), ""]
    else:
        p += ["", "## Provenance", "", *_provenance(spec, facts, sft=sft), ""]
        p += composition_card_lines(facts.get("composition"))
    if redteam is not None:
        p += _redteam_section(redteam)
    if not attacks:
        p += _templates(templates or []) if sft else _rubrics(rubrics)
    p += ["## Files", "", "| file | split | rows | bytes | sha256 |", "|---|---|---|---|---|"]
    p += [f"| `{f['path']}` | {f['split']} | {f['rows']} | {f['bytes']} | `{f['sha256']}` |" for f in files]
    p.append("")
    return "\n".join(y + p)


def _provenance(spec: Any, facts: dict[str, Any], *, sft: bool) -> list[str]:
    lines = [
        f"- filters: `{json.dumps(spec.filters, sort_keys=True)}`",
        f"- options: `{json.dumps(spec.options, sort_keys=True)}`",
    ]
    if sft:
        return [
            "- one row per finished session (its kept branch)",
            *lines,
            f"- sessions read: {facts['sessions']}",
            f"- left out: `{json.dumps(facts['skipped'], sort_keys=True)}`",
            f"- trainers: {facts['raters']} (ids are pseudonymous: a keyed hash, stable within this "
            "dataset name, the same as their rankings' `rater_id`)",
            f"- code version: {facts['code_version']}",
        ]
    lines = [
        f"- aggregation: `{spec.aggregation}`" + _aggregation_note(spec.aggregation, view_name=spec.format),
        *lines,
        _min_filters_note(spec),
        f"- judgments read: {facts['judgments']}; comparisons: {facts['comparisons']}",
        f"- left out: `{json.dumps(facts['skipped'], sort_keys=True)}`",
        f"- raters: {facts['raters']} (ids are pseudonymous: a keyed hash, stable within this dataset name)",
        (
            f"- agreement: mean {facts['agreement']['mean']} over {facts['agreement']['comparisons']} "
            "comparisons with two or more judgments (per comparison: the share of its judgments agreeing "
            "with the most common answer, averaged over its candidate pairs)"
            if facts["agreement"]["comparisons"]
            else "- agreement: no comparison has two or more judgments"
        ),
    ]
    talks = facts.get("conversations") or {}
    if talks.get("judgments"):
        lines.append(
            f"- conversations: {talks['judgments']} of the judgments read ranked the alternatives of a "
            f"conversation turn, {talks['abandoned_turns']} of them of a turn on a branch its trainer "
            "later went back from (abandoned). Those are kept: the trainer did rank those alternatives, "
            "so each is a real preference (the `sft` view leaves abandoned turns out)"
        )
    return [
        *lines,
        "- adjudication: with aggregation `adjudicated`, a row whose pair a reviewer gave a final "
        "label carries it (`adjudicated` true) and the others the majority's; `native` rows say "
        "whether their comparison was reviewed",
        f"- code version: {facts['code_version']}",
    ]


def _attack_split_note(view_name: str) -> str:
    if view_name == "redteam_eval":
        return "Every row is in `test`: this is the held-out red-team test set."
    return "Split by the attack's side (its family's): `train` or `test`, as the training pairs and the test set are."


def _attack_provenance(spec: Any, facts: dict[str, Any]) -> list[str]:
    return [
        "- one row per red-team attack (confirmed by a reviewer; for the attempts view, rejected too)",
        f"- filters: `{json.dumps(spec.filters, sort_keys=True)}`",
        f"- options: `{json.dumps(spec.options, sort_keys=True)}`",
        f"- left out: `{json.dumps(facts['skipped'], sort_keys=True)}`",
        f"- code version: {facts['code_version']}",
    ]


def _redteam_section(redteam: dict[str, Any]) -> list[str]:
    """Each side per harm category: training pairs, test items, confirmed without a safe reply."""
    counts = redteam["counts"]
    categories = sorted(
        set(counts["train_pairs"]) | set(counts["test_items"]) | set(counts["needs_safe_reply"])
    )
    p = [
        "## Red-team data",
        "",
        f"Each confirmed attack is on exactly one side, by its family: {redteam['side_rule']}. "
        f"Training pairs: {redteam['pairs']}; margin {redteam['margin']}. A confirmed training-side "
        "attack without an ideal reply gives no pair (it needs a safe reply written).",
        "",
        "| category | training pairs | test items | confirmed, needs a safe reply |",
        "|---|---|---|---|",
    ]
    for c in categories:
        p.append(
            f"| {c or '(none)'} | {counts['train_pairs'].get(c, 0)} | {counts['test_items'].get(c, 0)} "
            f"| {counts['needs_safe_reply'].get(c, 0)} |"
        )
    p.append(
        f"| **total** | {counts['train_pairs_total']} | {counts['test_items_total']} "
        f"| {counts['needs_safe_reply_total']} |"
    )
    p.append("")
    ranked = counts.get("train_pairs_ranked_total", 0)
    if ranked:  # said only when it happened, so cards of written replies alone stay as they were
        by_category = ", ".join(f"{c or '(none)'} {n}" for c, n in counts["train_pairs_ranked"].items())
        p.append(
            f"Chosen replies: {counts['train_pairs_total'] - ranked} written by a reviewer or "
            f"red-teamer, {ranked} ranked ({by_category}): for a harmful outcome without a written "
            "reply, the best-ranked refusal among fresh candidates raters ranked (mean rank position "
            "over every judgment of the attack's prompt, ties by candidate id); the manifest's "
            "`redteam.counts.ranked_attack_ids` lists those attacks."
        )
        p.append("")
    return p


def _aggregation_note(aggregation: str, *, view_name: str) -> str:
    if aggregation == "raw":
        return " (one row per judgment)"
    note = (
        " (one row per candidate pair: the votes of every comparison holding both responses, pair "
        "judgments and pairs inside rankings, from every queue read, are pooled and turned to the "
        "row's direction; `n_judgments` counts them, and `agreement` is the majority share, the share "
        "of them agreeing with the row's direction: the winning side, or about the same for a tie; "
        "`comparison_id` is the first comparison holding both, and `ranking_id` is empty)"
    )
    if view_name == "helpsteer":
        note += (
            "; `preference_strength` is the aggregated strength rounded half away from zero (1.5 -> 2, "
            "2.5 -> 3, -0.5 -> -1), at least 1 either way when it is not 0, so a preference is never "
            "exported as about the same; `aggregated_strength` keeps the exact value"
        )
    return note


def _min_filters_note(spec: Any) -> str:
    """What ``min_judgments`` / ``min_agreement`` meant for this export (they apply per row when aggregated)."""
    agreement = spec.filters.get("min_agreement")
    judgments = spec.filters.get("min_judgments")
    if spec.aggregation == "raw":
        return (
            f"- min_agreement: {agreement if agreement is not None else 'none'} (a comparison's judgments "
            "are kept when the share of them agreeing with the most common answer, averaged over its "
            "candidate pairs, is at least this); min_judgments: "
            f"{judgments if judgments is not None else 'none'} (judgments per comparison)"
        )
    return (
        f"- min_agreement: {agreement if agreement is not None else 'none'} (a row is kept when its "
        "`agreement`, the majority share of its pooled votes, is at least this); min_judgments: "
        f"{judgments if judgments is not None else 'none'} (pooled votes per row, its `n_judgments`)"
    )


def _rubrics(rubrics: list[Rubric]) -> list[str]:
    p = ["## Rubrics", ""]
    if not rubrics:
        p.append("No judgments, so no rubric.")
    for rubric in rubrics:
        p += [f"### {rubric.name} v{rubric.version}", ""]
        if rubric.description:
            p += [rubric.description, ""]
        for c in rubric.criteria.all():
            required = ", required" if c.required else ""
            p.append(f"- `{c.key}` ({c.kind}{required}): {c.question}")
        p.append("")
    return p


def _templates(templates: list[SessionTemplate]) -> list[str]:
    """The session templates (conversation queues) the rows come from, as they are now."""
    p = ["## Templates", ""]
    if not templates:
        p.append("No sessions, so no template.")
    for t in templates:
        generators = ", ".join(f"`{g.name}`" for g in sorted(t.generators.all(), key=lambda g: g.name))
        p += [
            f"### {t.queue.name} ({t.mode})",
            "",
            f"- models: {generators or 'none'}; alternatives per model turn: {t.alternatives}; "
            f"user turns per session: at most {t.max_turns}",
            f"- sampling: `{json.dumps(t.sampling, sort_keys=True)}`",
            f"- system prompt: {_q(t.system_prompt) if t.system_prompt.strip() else 'none'}",
            "",
        ]
    return p
