"""Form pieces for pages that build something from a set of prompts (generation jobs, queues), and
two that every app's pages and admin use: a choice of rows by id (``ModelIdsField``) and integer
inputs held to their column's range (``ColumnLimitsMixin``)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Field
from django.http import HttpRequest

from labeling.errors import INTEGER_RANGES, column_range, decimal_int, id_or_none

from .models import Prompt
from .selectors import prompts_select


class PromptChoiceForm(forms.Form):
    """Which prompts: all, any of some tags, one collection, or a list of ids (external ids too).

    ``chosen_prompts()`` resolves the choice with ``prompts_select`` and raises its
    ``ApplicationError``; ``add_service_error`` shows a service's error on the field it names.
    """

    prompts_by = forms.ChoiceField(
        label="Choose by",
        choices=[
            ("all", "All prompts"),
            ("tags", "Prompts with any of these tags"),
            ("collection", "One collection"),
            ("ids", "These prompts (ids or external ids)"),
        ],
        initial="all",
        widget=forms.RadioSelect,
    )
    tags = forms.CharField(required=False, help_text="Comma-separated.")
    collection = forms.ChoiceField(required=False)
    ids = forms.CharField(
        required=False,
        label="Prompt ids",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Separated by commas, spaces or new lines.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        collections = (
            Prompt.objects.exclude(collection="").order_by("collection").values_list("collection", flat=True)
        )
        field: Any = self.fields["collection"]
        field.choices = [("", "—")] + [(c, c) for c in collections.distinct()]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        way = data.get("prompts_by")
        if way == "tags" and not self._tags():
            self.add_error("tags", "Give at least one tag.")
        elif way == "collection" and not data.get("collection"):
            self.add_error("collection", "Choose a collection.")
        elif way == "ids" and not self._ids():
            self.add_error("ids", "Give at least one prompt id.")
        return data

    def _tags(self) -> list[str]:
        return [t.strip() for t in (self.cleaned_data.get("tags") or "").split(",") if t.strip()]

    def _ids(self) -> list[int | str]:
        refs = [r for r in re.split(r"[\s,]+", self.cleaned_data.get("ids") or "") if r]
        # Digits 0-9 are a prompt's id; anything else ("²", "-1", "q-7") an external id.
        return [n if not r.startswith("-") and (n := decimal_int(r)) is not None else r for r in refs]

    def chosen_prompts(self) -> list[Prompt]:
        way = self.cleaned_data["prompts_by"]
        return prompts_select(
            ids=self._ids() if way == "ids" else None,
            tags=self._tags() if way == "tags" else None,
            collection=self.cleaned_data["collection"] if way == "collection" else None,
            all_prompts=way == "all",
        )

    def add_service_error(self, field: str | None, message: str) -> None:
        """Show a service's error on the form field it names (a field the form lacks: above the form).

        The services call the prompt list ``prompts``; here that is the ``ids`` box, when it was used.
        """
        target: str | None = (field or "").split(".")[0]
        if target == "prompts":
            target = "ids" if self.cleaned_data.get("prompts_by") == "ids" else None
        self.add_error(target if target in self.fields else None, message)


class ModelIdsField(forms.ModelMultipleChoiceField):
    """Django's ``ModelMultipleChoiceField``, refusing a value that is no id (digits other than
    0-9, a number past the id column) as an invalid choice before the database sees it: on SQLite
    such a number made the lookup raise (a 500)."""

    def clean(self, value: Any) -> Any:
        if self.queryset is not None and self.to_field_name is None and isinstance(value, list | tuple):
            pk = self.queryset.model._meta.get_field("id")
            for item in value:
                if id_or_none(item.strip() if isinstance(item, str) else item, pk) is None:
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"], code="invalid_pk_value", params={"pk": item}
                    )
        return super().clean(value)


class ColumnLimitsMixin:
    """For a ``ModelAdmin`` or an inline: each integer input takes only what its column holds, on
    every database. Django's admin asks the database for the range, and SQLite answers 64 bits for
    every integer column: a queue's ``lease_seconds`` of 10**12 was saved there, and every claim
    on that queue then failed."""

    def formfield_for_dbfield(
        self, db_field: Field[Any, Any], request: HttpRequest | None, **kwargs: Any
    ) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
        if isinstance(formfield, forms.IntegerField) and db_field.get_internal_type() in INTEGER_RANGES:
            low, high = column_range(db_field)
            formfield.validators.extend([MinValueValidator(low), MaxValueValidator(high)])
        return formfield
