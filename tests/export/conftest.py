"""A small, fixed set of judgments covering every case the TRL writer maps.

Texts and prompt ids are fixed; database ids are not (they differ between SQLite and
PostgreSQL sequences), so golden comparisons normalize ids to their order of appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import pytest

from comparisons.models import Candidate, Comparison
from labeling.models import Assignment, Judgment, Queue, User
from tests.factories import (
    AssignmentFactory,
    CandidateFactory,
    CriterionFactory,
    GeneratorFactory,
    JudgmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RubricFactory,
    make_comparison,
    make_pair,
)


@dataclass
class ExportData:
    queue: Queue
    other_queue: Queue
    raters: list[User]
    judgments: dict[str, Judgment] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories set passwords; the default PBKDF2 costs ~0.2 s a user, which these tests don't test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _prompt(external_id: str, messages: list[dict[str, str]]):
    return PromptFactory(external_id=external_id, messages=messages)


def _judge(
    *,
    queue: Queue,
    comparison: Comparison,
    rater: User,
    preference: int | None,
    shown_order=None,
    ranking=None,
) -> Judgment:
    item = QueueItemFactory(queue=queue, comparison=comparison)
    kwargs = {"item": item, "rater": rater, "status": Assignment.Status.SUBMITTED}
    if shown_order is not None:
        kwargs["shown_order"] = shown_order
    assignment = AssignmentFactory(**kwargs)
    return cast(Judgment, JudgmentFactory(assignment=assignment, preference=preference, ranking=ranking))


@pytest.fixture
def export_data(rater, rater2) -> ExportData:
    """Judgments, created in this order (so judgment ids ascend in this order):

    a_much_better  -3, shown in comparison order          -> chosen "Paris."
    b_better       +1, by rater2                           -> chosen "Blue."
    tie             0                                      -> left out, counted
    multi_turn     -2, system+user+assistant+user prompt   -> chosen "3, café."
    swapped        -1, shown_order reversed: label A is the comparison's 2nd candidate
                                                           -> chosen "Two plus two is four."
    ranking        K=4 ranking [[B], [A, D], [C]] with a tie, shown in stored order
                   -> 5 TRL pairs (A=D tie left out), ranking_id = its judgment id
    other_queue    +3 in another queue (for the queue filter)

    The queue's rubric has one criterion of each kind; ``a_much_better`` and ``ranking`` answer
    them (Likert in shown labels), ``b_better`` carries a flag and a rationale.
    """
    rubric = RubricFactory(name="helpful", description="Pick the more **helpful** answer.")
    for key, kind, question in (
        ("accuracy", "preference", "Which is more accurate?"),
        ("helpfulness", "likert", "How helpful is each response?"),
        ("unsafe", "flag", "Is any response unsafe?"),
        ("note", "text", "Anything else?"),
    ):
        CriterionFactory(rubric=rubric, key=key, kind=kind, question=question)
    queue = cast(Queue, QueueFactory(name="export-main", rubric=rubric))
    other_queue = cast(Queue, QueueFactory(name="export-other"))
    data = ExportData(queue=queue, other_queue=other_queue, raters=[rater, rater2])

    capital = make_pair(
        _prompt("p-capital", [{"role": "user", "content": "What is the capital of France?"}]),
        texts=("Paris.", "Lyon."),
    )
    data.judgments["a_much_better"] = _judge(queue=queue, comparison=capital, rater=rater, preference=-3)
    Judgment.objects.filter(pk=data.judgments["a_much_better"].pk).update(
        criteria={"accuracy": -2, "helpfulness": {"A": 7, "B": 2}, "unsafe": False, "note": "easy"},
        active_seconds=12.5,
    )

    colour = make_pair(
        _prompt("p-colour", [{"role": "user", "content": "What colour is a clear daytime sky?"}]),
        texts=("Green.", "Blue."),
    )
    data.judgments["b_better"] = _judge(queue=queue, comparison=colour, rater=rater2, preference=1)
    Judgment.objects.filter(pk=data.judgments["b_better"].pk).update(
        flags=["offensive"], rationale="The sky is blue.", rewrite="Blue, on a clear day."
    )

    tie = make_pair(
        _prompt("p-tie", [{"role": "user", "content": "Say hello."}]),
        texts=("Hello.", "Hi."),
    )
    data.judgments["tie"] = _judge(queue=queue, comparison=tie, rater=rater, preference=0)

    multi = make_pair(
        _prompt(
            "p-multi",
            [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Name a prime."},
                {"role": "assistant", "content": "2."},
                {"role": "user", "content": 'Another one, and say "café".'},
            ],
        ),
        texts=("3, café.", "4, café."),
    )
    data.judgments["multi_turn"] = _judge(queue=queue, comparison=multi, rater=rater, preference=-2)

    swap = make_pair(
        _prompt("p-swap", [{"role": "user", "content": "What is 2 + 2?"}]),
        texts=("Two plus two is five.", "Two plus two is four."),
    )
    first, second = (m.candidate_id for m in swap.members.order_by("position"))
    data.judgments["swapped"] = _judge(
        queue=queue, comparison=swap, rater=rater2, preference=-1, shown_order=[second, first]
    )

    rank_prompt = _prompt("p-rank", [{"role": "user", "content": "Rank these."}])
    generator = GeneratorFactory()
    candidates = [
        cast(Candidate, CandidateFactory(prompt=rank_prompt, generator=generator, sample_index=i, text=t))
        for i, t in enumerate(("One.", "Two.", "Three.", "Four."))
    ]
    data.judgments["ranking"] = _judge(
        queue=queue,
        comparison=make_comparison(rank_prompt, candidates),
        rater=rater,
        preference=None,
        ranking=[["B"], ["A", "D"], ["C"]],
    )
    Judgment.objects.filter(pk=data.judgments["ranking"].pk).update(
        criteria={"helpfulness": {"A": 5, "B": 6, "C": 1, "D": 5}}
    )

    other = make_pair(
        _prompt("p-other", [{"role": "user", "content": "Other queue?"}]),
        texts=("Yes.", "No."),
    )
    data.judgments["other_queue"] = _judge(queue=other_queue, comparison=other, rater=rater, preference=3)
    for key, judgment in data.judgments.items():
        judgment.refresh_from_db()
        data.judgments[key] = judgment
    return data
