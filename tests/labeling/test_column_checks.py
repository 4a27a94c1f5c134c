"""The shared kernel's check of a value against a model field's column (``labeling.errors``), and
the services' edge cases that the HTTP walk (``tests/test_input_limits.py``) does not reach."""

from __future__ import annotations

import math

import pytest
from django.db import models

from export.spec import export_filters_clean, export_name_clean
from labeling.errors import (
    INTEGER_RANGES,
    ApplicationError,
    column_check,
    column_range,
    decimal_int,
    id_or_none,
)
from labeling.models import Queue, QueueItem, Rubric
from labeling.services import queue_add_gold, rubric_create
from labeling.services.queue_admin import queue_update_settings
from model_runner.models import Generator
from model_runner.services import generation_job_create, generator_create
from tests.factories import CandidateFactory, PromptFactory, QueueFactory, make_comparison, make_pair

INTEGER_FIELDS = [
    models.SmallIntegerField,
    models.PositiveSmallIntegerField,
    models.IntegerField,
    models.PositiveIntegerField,
    models.BigIntegerField,
    models.PositiveBigIntegerField,
    models.BigAutoField,
]


def _field(cls, **kwargs):
    field = cls(**kwargs)
    field.set_attributes_from_name("x")
    return field


@pytest.mark.parametrize("cls", INTEGER_FIELDS)
def test_an_integer_column_takes_exactly_its_types_range(cls):
    field = _field(cls, primary_key=cls is models.BigAutoField)
    low, high = INTEGER_RANGES[field.get_internal_type()]
    assert column_check(field, low) == low and column_check(field, high) == high
    for bad in (low - 1, high + 1, True, 1.0, "1", None):
        with pytest.raises(ApplicationError) as refused:
            column_check(field, bad)
        assert refused.value.field == "x"
    assert f"between {low} and {high}" in str(
        pytest.raises(ApplicationError, column_check, field, high + 1).value
    )


def test_bounds_narrow_the_column_and_the_message_names_them():
    field = _field(models.PositiveIntegerField)
    assert column_check(field, 30, low=30) == 30
    with pytest.raises(ApplicationError) as refused:
        column_check(field, 29, name="lease_seconds", low=30)
    assert refused.value.message == "lease_seconds: must be a whole number between 30 and 2147483647"


def test_a_foreign_key_takes_its_targets_range():
    field = QueueItem._meta.get_field("queue")
    assert column_range(field) == INTEGER_RANGES["BigAutoField"]
    assert column_check(field, 2**63 - 1) == 2**63 - 1
    with pytest.raises(ApplicationError):
        column_check(field, 2**63)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("abcd", "at most 3 characters (this has 4)"),
        ("a\x00", "U+0000 (NUL)"),
        ("\ud800", "U+D800"),
        (3, "text"),
    ],
)
def test_text_fits_its_length_and_holds_only_storable_characters(value, problem):
    field = _field(models.CharField, max_length=3)
    assert column_check(field, "abc") == "abc"
    with pytest.raises(ApplicationError) as refused:
        column_check(field, value, name="label")
    assert problem in refused.value.message and refused.value.field == "label"


def test_a_text_field_has_no_length_but_the_same_characters():
    field = _field(models.TextField)
    assert column_check(field, "x" * 100_000)
    with pytest.raises(ApplicationError):
        column_check(field, "x\x00")


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 10**400, True, "0.5"])
def test_a_float_column_takes_finite_numbers(value):
    with pytest.raises(ApplicationError) as refused:
        column_check(_field(models.FloatField), value, low=0.0, high=1.0)
    assert "finite number at least 0.0 and at most 1.0" in refused.value.message
    assert column_check(_field(models.FloatField), 1) == 1.0


def test_an_unknown_kind_of_field_is_a_programming_error():
    with pytest.raises(TypeError):
        column_check(_field(models.JSONField), {})


@pytest.mark.parametrize(
    ("text", "number"),
    [("12", 12), ("-3", -3), ("²", None), ("٣", None), ("1.0", None), ("", None), ("-", None), (" 1", None)],
)
def test_decimal_int_reads_ascii_digits_only(text, number):
    assert "²".isdigit() and "٣".isdigit()  # what str.isdigit() lets through
    assert decimal_int(text) == number


def test_decimal_int_past_pythons_digit_limit_is_none():
    assert decimal_int("9" * 5000) is None


@pytest.mark.parametrize(
    ("value", "pk"),
    [(7, 7), ("7", 7), ("²", None), (2**63, None), ("9" * 30, None), (True, None), ("q7", None)],
)
def test_id_or_none_is_an_id_the_key_column_can_hold(value, pk):
    assert id_or_none(value, Queue._meta.get_field("id")) == pk


# --------------------------------------------------------------------------- the services


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("criteria", "field"),
    [
        ([{"key": "k" * 65, "kind": "flag"}], "criteria[0].key"),
        ([{"key": "bad key", "kind": "flag"}], "criteria[0].key"),
        ([{"key": "a:b", "kind": "flag"}], "criteria[0].key"),
        ([{"key": "k", "kind": "flag", "question": "q" * 501}], "criteria[0].question"),
        ([{"key": "k", "kind": "flag", "required": "yes"}], "criteria[0].required"),
        ([{"key": "k", "kind": "flag"}, {"key": "k", "kind": "text"}], "criteria[1].key"),
        ("k", "criteria"),
    ],
)
def test_rubric_create_checks_every_criterion_against_its_columns(criteria, field):
    with pytest.raises(ApplicationError) as refused:
        rubric_create(name="r", criteria=criteria)
    assert refused.value.field == field
    assert not Rubric.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lease_seconds": 10**12}, "lease_seconds"),
        ({"lease_seconds": 2**31}, "lease_seconds"),
        ({"priority": -(2**31) - 1}, "priority"),
        ({"content_warning": "w" * 201}, "content_warning"),
        ({"guidelines": "a\x00b"}, "guidelines"),
    ],
)
def test_queue_settings_are_checked_against_their_columns(change, field):
    queue = QueueFactory()
    with pytest.raises(ApplicationError) as refused:
        queue_update_settings(queue=queue, **change)
    assert refused.value.field == field
    assert Queue.objects.get(pk=queue.pk).lease_seconds == queue.lease_seconds


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"comparison": 2**63, "preference": 1}, "items[0].comparison"),
        ({"comparison": "²", "preference": 1}, "items[0].comparison"),
        ({"preference": 9}, "items[0].preference"),
        ({"preference": True}, "items[0].preference"),
    ],
)
def test_gold_answers_are_checked(entry, field):
    queue = QueueFactory()
    entry = {"comparison": make_pair().pk, **entry}
    with pytest.raises(ApplicationError) as refused:
        queue_add_gold(queue=queue, gold=[entry])
    assert refused.value.field == field and not queue.items.exists()


@pytest.mark.django_db
def test_a_gold_ranking_must_be_groups_of_positions():
    queue = QueueFactory()
    prompt = PromptFactory()
    comparison = make_comparison(prompt, CandidateFactory.create_batch(3, prompt=prompt))
    for ranking in ([[0], ["1"], [2]], [0, 1, 2], [[0], [[1]], [2]], [[0], [1, 2], [2]]):
        with pytest.raises(ApplicationError) as refused:
            queue_add_gold(queue=queue, gold=[{"comparison": comparison.pk, "ranking": ranking}])
        assert refused.value.field == "items[0].ranking"
    assert queue_add_gold(queue=queue, gold=[{"comparison": comparison.pk, "ranking": [[2], [0, 1]]}]) == 1


@pytest.mark.django_db
def test_generator_text_settings_fit_their_columns():
    with pytest.raises(ApplicationError) as refused:
        generator_create(name="g", backend="imported", gguf_file="f" * 301)
    assert refused.value.field == "gguf_file" and "at most 300 characters" in refused.value.message
    assert not Generator.objects.exists()


@pytest.mark.django_db
def test_generation_job_sizes_must_be_whole_numbers():
    with pytest.raises(ApplicationError) as refused:
        generation_job_create(prompts=[PromptFactory()], generators=[], batch_size="16")
    assert refused.value.field == "batch_size"


@pytest.mark.parametrize("name", ["data\n", "²", "x" * 101, "-x", ""])
def test_an_export_name_is_a_whole_match(name):
    with pytest.raises(ApplicationError) as refused:
        export_name_clean(name=name)
    assert refused.value.field == "name"


@pytest.mark.django_db
def test_an_id_filter_names_numbers_no_row_can_have():
    with pytest.raises(ApplicationError) as refused:
        export_filters_clean(filters={"queues": ["9" * 5000]})
    assert refused.value.field == "filters.queues" and "99999..." in refused.value.message
