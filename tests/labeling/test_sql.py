"""The hand-written statements (labeling.sql) return and store what the ORM would, field for
field; their docstrings show what they render; and the models they write keep no save() override
or signal receiver that a hand-written write would skip."""

from __future__ import annotations

import pytest
from django.db.models import Model

from labeling.models import Assignment, Queue
from labeling.selectors import assignment_get_for_rater, queue_get_for_rater
from tests.factories import (
    AssignmentFactory,
    PromptFactory,
    QueueFactory,
    QueueItemFactory,
    RaterFactory,
    api_key_for,
    make_pair,
)

pytestmark = pytest.mark.django_db


def _same(got: Model, want: Model) -> None:
    assert type(got) is type(want)
    for field in type(want)._meta.concrete_fields:
        assert getattr(got, field.attname) == getattr(want, field.attname), field.name
    assert got._state.adding is False and got._state.db == want._state.db


def test_gatekeeper_rows_match_the_orm():
    rater = RaterFactory()
    prompt = PromptFactory(messages=[{"role": "user", "content": 'ünï ✓ "quoted"'}], tags=["a"])
    queue = QueueFactory(members=[rater], guidelines="Be fair.", gold_rate=0.25)
    item = QueueItemFactory(queue=queue, comparison=make_pair(prompt=prompt), gold_answer={"preference": 2})
    assignment = AssignmentFactory(item=item, rater=rater)
    got = assignment_get_for_rater(rater=rater, assignment_id=assignment.pk)
    want = Assignment.objects.select_related("item__queue__rubric", "item__comparison__prompt").get(
        pk=assignment.pk
    )
    _same(got, want)
    _same(got.item, want.item)
    _same(got.item.queue, want.item.queue)
    _same(got.item.queue.rubric, want.item.queue.rubric)
    _same(got.item.comparison, want.item.comparison)
    _same(got.item.comparison.prompt, want.item.comparison.prompt)
    assert got.expires_at.tzinfo is not None and isinstance(got.shown_order, list)
    # saving a hydrated instance works as for any ORM instance
    got.skip_reason = "saved"
    got.save(update_fields=["skip_reason"])
    assert Assignment.objects.get(pk=assignment.pk).skip_reason == "saved"


def test_gatekeeper_refuses_other_raters_and_odd_ids():
    from django.http import Http404

    assignment = AssignmentFactory()
    for rater, pk in ((RaterFactory(), assignment.pk), (assignment.rater, 2**70), (assignment.rater, "x")):
        with pytest.raises(Http404):
            assignment_get_for_rater(rater=rater, assignment_id=pk)


def test_queue_gatekeeper_matches_the_orm_and_refuses_non_members():
    from django.http import Http404

    rater, outsider = RaterFactory(), RaterFactory()
    queue = QueueFactory(guidelines="g", content_warning_category="violence", members=[rater])
    got = queue_get_for_rater(rater=rater, queue_id=queue.pk)
    _same(got, Queue.objects.get(pk=queue.pk))
    _same(got.rubric, queue.rubric)
    for who, pk in ((outsider, queue.pk), (rater, queue.pk + 1000), (rater, 2**70), (rater, "x")):
        with pytest.raises(Http404):
            queue_get_for_rater(rater=who, queue_id=pk)


def test_token_authentication_rules(api):
    rater = RaterFactory()
    key = api_key_for(rater)
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert api.get("/api/v1/queues/").status_code == 200
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-key")
    response = api.get("/api/v1/queues/")
    assert response.status_code == 401 and response.json()["detail"] == "Invalid token."
    rater.is_active = False
    rater.save()
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = api.get("/api/v1/queues/")
    assert response.status_code == 401 and response.json()["detail"] == "User inactive or deleted."


def test_claim_and_submit_store_what_they_return():
    """The lease and the judgment (one statement each on PostgreSQL) are stored as returned."""
    from labeling.models import Judgment, QueueItem
    from labeling.services import assignment_claim_next, judgment_submit
    from tests.factories import CandidateFactory, make_comparison

    rater = RaterFactory()
    queue = QueueFactory(members=[rater], kind=Queue.Kind.RANKING, overlap=2)
    prompt = PromptFactory()
    item = QueueItemFactory(
        queue=queue, comparison=make_comparison(prompt, CandidateFactory.create_batch(3, prompt=prompt))
    )
    lease = assignment_claim_next(rater=rater, queue=queue)
    _same(lease, Assignment.objects.get(pk=lease.pk))
    assert sorted(lease.shown_order) == sorted(int(x) for x in item.comparison.candidate_key.split(","))
    assert QueueItem.objects.get(pk=item.pk).claimed == 1

    judgment, created = judgment_submit(
        assignment=lease,
        ranking=[["B"], ["A", "C"]],
        flags=["cw:violence", "cw:violence"],
        active_seconds=4.5,
        rationale="ü",
    )
    assert created
    _same(judgment, Judgment.objects.get(pk=judgment.pk))
    assert (
        judgment.ranking == [["B"], ["A", "C"]]
        and judgment.preference is None
        and judgment.flags == ["cw:violence"]
    )
    assert (
        judgment.created_at.tzinfo is not None and judgment.assignment.status == Assignment.Status.SUBMITTED
    )
    assert Assignment.objects.get(pk=lease.pk).status == Assignment.Status.SUBMITTED
    stored = QueueItem.objects.get(pk=item.pk)
    assert (stored.claimed, stored.judged) == (1, 1)
    # a replay writes nothing and returns the stored judgment
    again, created = judgment_submit(
        assignment=Assignment.objects.get(pk=lease.pk), ranking=[["A"], ["B", "C"]]
    )
    assert not created and again.pk == judgment.pk and again.ranking == [["B"], ["A", "C"]]
    assert Judgment.objects.count() == 1 and QueueItem.objects.get(pk=item.pk).judged == 1


# ------------------------------------------------------------------- the statements themselves


def _abbreviated(statement) -> str:
    """The statement as rendered, its select list written as in the docstrings."""
    from labeling.sql.hydrate import select_list

    sql = statement.sql()
    if statement.hydrates:
        tables = ", ".join(f'"{m._meta.db_table}"' for m in statement.hydrates)
        sql = sql.replace(select_list(*statement.hydrates), f"<columns of {tables}>")
    return " ".join(sql.split())


def _docstring_sql(statement) -> str:
    """The SQL in a statement's docstring: its last paragraph, without the [PostgreSQL] marks."""
    import inspect

    sql = inspect.cleandoc(statement.__doc__).split("\n\n")[-1]
    return " ".join(sql.replace(" [PostgreSQL]", "").split())


@pytest.mark.postgres
@pytest.mark.parametrize("name", [s.name for s in __import__("labeling.sql.statements").sql.statements.ALL])
def test_each_docstring_shows_the_statement_as_rendered_on_postgresql(name):
    from labeling.sql import statements

    statement = getattr(statements, name)
    assert _docstring_sql(statement) == _abbreviated(statement)


def test_statements_take_named_parameters_only():
    """No positional %s: each value is bound by name (the one SQL injection door is closed too:
    identifiers come from model metadata, values only from parameters)."""
    import re

    from django.db import connection

    from labeling.sql import statements

    for statement in statements.ALL:
        if statement.postgresql_only and connection.vendor != "postgresql":
            with pytest.raises(RuntimeError, match="PostgreSQL-only"):
                statement.sql()
            continue
        sql = statement.sql()
        assert "%s" not in sql, statement.name
        assert re.findall(r"%\(\w+\)s", sql), statement.name


def test_pg_names_mark_exactly_the_postgresql_only_statements():
    from labeling.sql import statements

    for statement in statements.ALL:
        assert statement.postgresql_only == statement.name.startswith("pg_"), statement.name


def test_models_written_by_hand_have_no_save_override_or_signal_receiver():
    """The hand-written inserts and updates skip Model.save() and the model signals, in production
    (PostgreSQL) only: a save() override or a receiver on these models would silently not run."""
    from django.db.models import Model, signals

    from labeling.sql import statements

    for model in statements.WRITTEN_MODELS:
        for klass in model.__mro__:
            if klass is Model:
                break
            assert "save" not in vars(klass), f"{klass.__name__}.save() would be skipped by labeling.sql"
        for signal in (signals.pre_save, signals.post_save, signals.pre_delete, signals.post_delete):
            assert not signal.has_listeners(model), (
                f"a {model.__name__} receiver would be skipped by labeling.sql"
            )


def test_the_receiver_check_sees_a_receiver():
    """The check above can fail: a receiver connected to a hand-written model is seen."""
    from django.db.models import signals

    from labeling.models import Judgment

    def receiver(**kwargs):  # pragma: no cover - never called
        pass

    signals.post_save.connect(receiver, sender=Judgment)
    try:
        assert signals.post_save.has_listeners(Judgment)
    finally:
        signals.post_save.disconnect(receiver, sender=Judgment)
