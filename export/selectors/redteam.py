"""Reads of the red-team data an export holds: confirmed attacks by side, attempts with a verdict,
and the per-category counts the manifest and the dataset card give.

Which side an attack feeds is ``labeling.selectors.redteam.attack_side`` of its family (never
anything of this export), so the training pairs (the pair views' ``redteam`` source) and the
``redteam_eval`` rows never share a family, and every turn of one session (one family) is on
one side. Attacks of test-set runs (source ``eval``) measure a model and feed neither.

A training pair's ``chosen`` reply comes one of two ways (:func:`redteam_chosen_from`):
``written``, the ideal reply a reviewer or red-teamer wrote; or, for an attack with a harmful
outcome and no written reply, ``ranked``: the best-ranked refusal among the candidates raters
ranked on the attack's prompt (``labeling.services.redteam_safe_replies`` asks for them). Every
submitted judgment of a comparison on that prompt counts: each candidate's rank position is its
group index (0 = best; ties share a group; a pair judgment is a 2-way ranking), the candidates are
ordered by their mean position, ties by candidate id, and the first whose text is a refusal
(``labeling.refusal.is_refusal``) and is not the harmful reply (neither that candidate nor its
text) is chosen. With no such candidate the attack still needs a safe reply and gives no pair.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from fractions import Fraction
from typing import Any

from comparisons.dedupe import same_text
from comparisons.models import Candidate
from export.records import LABELS, AttackRecord, CandidateInfo, ExportDataError, PromptInfo
from labeling.models import Attack, Judgment
from labeling.models.redteam import HARMFUL_OUTCOMES
from labeling.refusal import is_refusal
from labeling.selectors.redteam import attack_side, attacks_on_side

#: The red-team views (one row per attack); the pair views take red-team pairs via ``sources``.
REDTEAM_VIEWS = ("redteam_eval", "redteam_attempts")
#: Prompt and candidate ids per query when reading rankings.
CHUNK = 500
ATTACK_SIDE_DOC = (
    "side = 'test' if int(sha256('redteam' + '\\0' + family)[:8 bytes]) / 2**64 < "
    "PREFLAB_REDTEAM_TEST_FRACTION else 'train'; family = the attack's session, seed family or "
    "imported conversation, so every variant of an attack and every turn of a session share a side"
)


def _record(attack: Attack, ranked_reply: CandidateInfo | None = None) -> AttackRecord:
    prompt = attack.prompt
    try:
        messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt.messages]
    except (TypeError, KeyError) as exc:
        raise ExportDataError(f"attack {attack.pk}: its prompt's messages are malformed ({exc!r})")
    reply = attack.reply
    author = attack.author
    return AttackRecord(
        id=attack.pk,
        source=attack.source,
        status=attack.status,
        family=attack.family,
        side=attack_side(family=attack.family),
        prompt=PromptInfo(
            prompt.pk,
            prompt.external_id or str(prompt.pk),
            messages,
            prompt.source,
            [str(t) for t in prompt.tags or []],
            prompt.content_hash,
        ),
        reply=reply.text if reply is not None else None,
        reply_id=reply.pk if reply is not None else None,
        reply_generator=reply.generator.name if reply is not None else "",
        ideal_reply=attack.ideal_reply,
        outcome=attack.outcome,
        category=attack.category,
        tactic=attack.tactic,
        severity=attack.severity,
        description=attack.description,
        author_user_id=attack.author_id,
        author_role=author.role if author is not None else "",
        target=attack.target.name if attack.target is not None else "",
        ranked_reply=ranked_reply,
    )


def _in_categories(attack: Attack, categories: list[str] | None) -> bool:
    return not categories or attack.category in categories


def _judged_groups(judgment_id: int, shown: Any, ranking: Any, preference: int | None) -> list[list[int]]:
    """A judgment's answer as groups of candidate ids, best first (a pair is a 2-way ranking)."""
    try:
        if ranking is not None:
            return [[int(shown[LABELS.index(label)]) for label in group] for group in ranking]
        a, b = (int(c) for c in shown)
    except (TypeError, ValueError, IndexError) as exc:
        raise ExportDataError(f"judgment {judgment_id}: its ranking or shown order is malformed ({exc!r})")
    if preference is None or preference == 0:
        return [[a, b]]
    return [[a], [b]] if preference < 0 else [[b], [a]]


def _ranked_refusals(attacks: list[Attack]) -> dict[int, CandidateInfo]:
    """attack id -> its best-ranked refusal (module docstring), for the train-side attacks with a
    harmful outcome and no written reply whose prompt has one."""
    wanted = [a for a in attacks if a.outcome in HARMFUL_OUTCOMES and not a.ideal_reply.strip()]
    if not wanted:
        return {}
    positions: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    prompt_ids = sorted({a.prompt_id for a in wanted})
    for start in range(0, len(prompt_ids), CHUNK):  # bounded IN lists (SQLite's variable limit)
        judged = (
            Judgment.objects.filter(
                assignment__item__comparison__prompt_id__in=prompt_ids[start : start + CHUNK]
            )
            .values_list(
                "id",
                "assignment__item__comparison__prompt_id",
                "assignment__shown_order",
                "ranking",
                "preference",
            )
            .order_by("id")
        )
        for judgment_id, prompt_id, shown, ranking, preference in judged:
            for g, group in enumerate(_judged_groups(judgment_id, shown, ranking, preference)):
                for candidate_id in group:
                    positions[prompt_id][candidate_id].append(g)
    if not positions:
        return {}
    ids = sorted({c for ranks in positions.values() for c in ranks})
    texts: dict[int, tuple[str, str]] = {}
    for start in range(0, len(ids), CHUNK):
        for pk, text, name in Candidate.objects.filter(pk__in=ids[start : start + CHUNK]).values_list(
            "id", "text", "generator__name"
        ):
            texts[pk] = (text, name)
    found: dict[int, CandidateInfo] = {}
    for attack in wanted:
        ranks = positions.get(attack.prompt_id, {})
        harmful = attack.reply.text if attack.reply is not None else None
        # Exact means (Fraction), so equal means tie exactly and go to the lower candidate id.
        order = sorted(ranks, key=lambda c: (Fraction(sum(ranks[c]), len(ranks[c])), c))
        for candidate_id in order:
            if candidate_id not in texts:
                continue  # a shown order naming no candidate: nothing to choose
            text, generator = texts[candidate_id]
            if candidate_id == attack.reply_id or (harmful is not None and same_text(text, harmful)):
                continue
            if is_refusal(text):
                found[attack.pk] = CandidateInfo(candidate_id, 0, text, generator or "")
                break
    return found


def export_redteam_side(*, side: str, categories: list[str] | None = None) -> list[AttackRecord]:
    """Confirmed attacks (harmful outcomes and over-refusals) of one side, of these categories, by
    id; on the ``train`` side with each one's ranked reply when it has one (module docstring)."""
    found = attacks_on_side(side=side)
    ids = [a.pk for a in found if _in_categories(a, categories)]
    qs = Attack.objects.filter(pk__in=ids).select_related("prompt", "reply__generator", "target", "author")
    attacks = list(qs.order_by("id"))
    ranked = _ranked_refusals(attacks) if side == "train" else {}
    return [_record(a, ranked.get(a.pk)) for a in attacks]


def export_redteam_attempts(*, categories: list[str] | None = None) -> list[AttackRecord]:
    """Every attack with a verdict (confirmed or rejected), of every source but test-set runs, by id."""
    qs = (
        Attack.objects.filter(status__in=[Attack.Status.CONFIRMED, Attack.Status.REJECTED])
        .exclude(source=Attack.Source.EVAL)
        .select_related("prompt", "reply__generator", "target", "author")
        .order_by("id")
    )
    if categories:
        qs = qs.filter(category__in=categories)
    return [_record(a) for a in qs]


def redteam_chosen_from(record: AttackRecord) -> str:
    """Where a train-side attack's chosen reply comes from: ``written`` (its ideal reply),
    ``ranked`` (the best-ranked refusal among rated candidates), or ``""`` (none yet)."""
    if record.ideal_reply.strip():
        return "written"
    return "ranked" if record.ranked_reply is not None else ""


def redteam_chosen_text(record: AttackRecord) -> str:
    """The text of a train-side attack's chosen reply (``""`` when it has none)."""
    chosen_from = redteam_chosen_from(record)
    if chosen_from == "ranked":
        assert record.ranked_reply is not None
        return record.ranked_reply.text
    return record.ideal_reply if chosen_from == "written" else ""


def redteam_pair_ready(record: AttackRecord) -> str:
    """Why a train-side attack gives no training pair (``""``: it gives one)."""
    if not redteam_chosen_from(record):
        return "needs_safe_reply"
    if record.reply is None:
        return "without_reply"
    if same_text(redteam_chosen_text(record), record.reply):
        return "identical_pairs"
    return ""


def export_redteam_counts(*, categories: list[str] | None = None) -> dict[str, Any]:
    """Per category, for the manifest and the card: ``train_pairs`` (training pairs the pair views
    write), ``needs_safe_reply`` (confirmed train-side attacks without an ideal reply: no pair),
    ``test_items`` (``redteam_eval`` rows), each ``{category: n}`` sorted, plus their totals; and
    ``train_pairs_ranked`` (of the training pairs, those whose chosen reply is the best-ranked
    refusal rather than a written one, same shape) with ``ranked_attack_ids`` (those attacks, by id):
    the provenance of each pair's chosen reply."""
    pairs: Counter[str] = Counter()
    ranked: Counter[str] = Counter()
    ranked_ids: list[int] = []
    needs: Counter[str] = Counter()
    for record in export_redteam_side(side="train", categories=categories):
        why = redteam_pair_ready(record)
        if not why:
            pairs[record.category] += 1
            if redteam_chosen_from(record) == "ranked":
                ranked[record.category] += 1
                ranked_ids.append(record.id)
        elif why == "needs_safe_reply":
            needs[record.category] += 1
    tests = Counter(r.category for r in export_redteam_side(side="test", categories=categories))
    out: dict[str, Any] = {}
    for key, counter in (
        ("train_pairs", pairs),
        ("test_items", tests),
        ("needs_safe_reply", needs),
        ("train_pairs_ranked", ranked),
    ):
        out[key] = dict(sorted(counter.items()))
        out[f"{key}_total"] = sum(counter.values())
    out["ranked_attack_ids"] = ranked_ids
    return out


def export_redteam_count(*, format: str, categories: list[str] | None = None) -> int:
    """Rows a red-team view or the red-team part of a pair view will write (the estimate, progress)."""
    if format == "redteam_attempts":
        return len(export_redteam_attempts(categories=categories))
    counts = export_redteam_counts(categories=categories)
    return int(counts["test_items_total"] if format == "redteam_eval" else counts["train_pairs_total"])
