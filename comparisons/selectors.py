"""Reads for prompts, candidates and comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection
from django.db.models import BooleanField, Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from labeling.errors import ApplicationError, NotFound, id_or_none

from .importing import shown_value, shown_values
from .models import Candidate, Comparison, ComparisonCandidate, ImportJob, Prompt, PromptExternalId


def prompt_list(
    *,
    tags: Iterable[str] | None = None,
    collection: str | None = None,
    ids: Iterable[int | str] | None = None,
    source: str | None = None,
    with_candidate_count: bool = False,
) -> QuerySet[Prompt]:
    """Prompts in id order, narrowed by every filter given.

    ``tags``: prompts carrying ANY of these tags. ``ids``: primary keys (ints) or public ids
    (strings: any external id a prompt was imported under, or a pk written in digits). ``with_candidate_count`` annotates
    ``candidate_count``.
    """
    queryset = Prompt.objects.all()
    if collection is not None:
        queryset = queryset.filter(collection=collection)
    if source is not None:
        queryset = queryset.filter(source=source)
    if ids is not None:
        queryset = queryset.filter(_ids_q(ids))
    if tags is not None:
        queryset = _with_any_tag(queryset, [t for t in tags if t])
    if with_candidate_count:
        counts = (
            Candidate.objects.filter(prompt=OuterRef("pk"))
            .order_by()
            .values("prompt")
            .annotate(n=Count("id"))
            .values("n")
        )
        queryset = queryset.annotate(
            candidate_count=Coalesce(Subquery(counts, output_field=IntegerField()), 0)
        )
    return queryset.order_by("id")


def prompts_select(
    *,
    ids: Sequence[int | str] | None = None,
    tags: Sequence[str] | None = None,
    collection: str | None = None,
    all_prompts: bool = False,
) -> list[Prompt]:
    """The prompts a generation job or a queue is built from, chosen one way: ``ids`` (numbers =
    pk, strings = any of a prompt's external ids, else a pk in digits; in the order given), or ``tags`` (any of them)
    and/or a ``collection``, or all. Raises ``ApplicationError`` naming the field when the choice
    is ambiguous or matches nothing; unknown ids are listed, values written as in JSON
    (``unknown prompt ids: "a", "b"``)."""
    by_filter = tags is not None or collection is not None
    if sum([ids is not None, by_filter, all_prompts]) != 1:
        raise ApplicationError(
            "prompts: give prompt ids, or tags and/or a collection, or all prompts", field="prompts"
        )
    if ids is not None:
        return _prompts_by_ids(ids)
    if by_filter:
        found = list(prompt_list(tags=tags, collection=collection))
        if not found:
            wanted = sorted({t for t in tags or [] if t})
            if tags is not None and not wanted:
                raise ApplicationError("tags: give at least one tag", field="tags")
            some_tag = (
                f"the tag {shown_values(wanted)}"
                if len(wanted) == 1
                else f"any of the tags {shown_values(wanted)}"
            )
            if collection is None:
                raise ApplicationError(f"tags: no prompt has {some_tag}", field="tags")
            if tags is None:
                raise ApplicationError(
                    f"collection: no prompts in collection {shown_value(collection)}", field="collection"
                )
            raise ApplicationError(
                f"prompts: no prompt in collection {shown_value(collection)} has {some_tag}",
                field="prompts",
            )
        return found
    found = list(Prompt.objects.order_by("id"))
    if not found:
        raise ApplicationError("prompts: there are no prompts yet; import some first", field="prompts")
    return found


def _prompts_by_ids(ids: Sequence[int | str]) -> list[Prompt]:
    found = list(prompt_list(ids=ids))
    by_external = {p.external_id: p for p in found if p.external_id}
    # A prompt imported under several ids is found by any of them (PromptExternalId).
    wanted = [ref for ref in ids if isinstance(ref, str) and ref not in by_external]
    by_pk_found = {p.pk: p for p in found}
    for value, prompt_id in PromptExternalId.objects.filter(value__in=wanted).values_list(
        "value", "prompt_id"
    ):
        if prompt_id in by_pk_found:
            by_external[value] = by_pk_found[prompt_id]
    by_pk = {p.pk: p for p in found}
    result: list[Prompt] = []
    unknown: list[int | str] = []
    pk_field = Prompt._meta.get_field("id")
    for ref in ids:
        prompt = by_external.get(ref) if isinstance(ref, str) else None
        pk = id_or_none(ref, pk_field) if prompt is None else None
        if pk is not None:
            prompt = by_pk.get(pk)
        if prompt is None:
            unknown.append(ref)
        else:
            result.append(prompt)
    if unknown:
        ids_word = "id" if len(unknown) == 1 else "ids"
        raise ApplicationError(
            f"prompts: unknown prompt {ids_word}: {shown_values(unknown)}", field="prompts"
        )
    if not result:
        raise ApplicationError("prompts: select at least one prompt", field="prompts")
    return result


def _ids_q(ids: Iterable[int | str]) -> Q:
    pks: set[int] = set()
    external: set[str] = set()
    pk_field = Prompt._meta.get_field("id")
    for value in ids:
        if isinstance(value, str):
            external.add(value)
        pk = id_or_none(value, pk_field)  # None: no prompt can have it ("²", past the column)
        if pk is not None:
            pks.add(pk)
    aliased = PromptExternalId.objects.filter(value__in=external).values("prompt_id")
    return Q(pk__in=pks) | Q(external_id__in=external) | Q(pk__in=aliased)


def _with_any_tag(queryset: QuerySet[Prompt], tags: list[str]) -> QuerySet[Prompt]:
    if not tags:
        return queryset.none()
    if connection.features.supports_json_field_contains:
        condition = Q()
        for tag in tags:
            condition |= Q(tags__contains=[tag])
        return queryset.filter(condition)
    # SQLite has no JSON containment lookup; its json_each() answers the same question.
    table = Prompt._meta.db_table
    placeholders = ", ".join(["%s"] * len(tags))
    has_tag = RawSQL(
        f'EXISTS (SELECT 1 FROM json_each("{table}"."tags") WHERE json_each.value IN ({placeholders}))',  # noqa: S608
        tags,
        output_field=BooleanField(),
    )
    return queryset.alias(has_tag=has_tag).filter(has_tag=True)


def comparison_candidates(comparison: Comparison) -> list[Candidate]:
    """The comparison's candidates in stored order (``position``)."""
    members = ComparisonCandidate.objects.filter(comparison=comparison).select_related("candidate")
    return [member.candidate for member in members.order_by("position")]


def import_job_list() -> QuerySet[ImportJob]:
    """Import jobs, newest first."""
    return ImportJob.objects.select_related("created_by").order_by("-id")


def import_job_get(*, import_job_id: int) -> ImportJob:
    """One import job; NotFound (404) when there is none with this id."""
    pk = id_or_none(import_job_id, ImportJob._meta.get_field("id"))
    import_job = import_job_list().filter(pk=pk).first() if pk is not None else None
    if import_job is None:
        raise NotFound(f"import job {import_job_id}: not found")
    return import_job
