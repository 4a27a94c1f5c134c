"""Form pieces for pages that build something from a set of prompts (generation jobs, queues)."""

from __future__ import annotations

import re
from typing import Any

from django import forms

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
        return [int(r) if r.isdigit() else r for r in refs]

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
