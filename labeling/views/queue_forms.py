"""The admin queue pages' forms: a new queue (the same request as ``POST /api/v1/queues/``), and
on a queue's dashboard its safe settings and its members (``PATCH /api/v1/queues/{id}/``)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib.auth.models import Group

from comparisons.forms import ModelIdsField, PromptChoiceForm
from labeling import services
from labeling.models import ContentCategory, Queue, Rubric, User
from labeling.selectors.queue_admin import queue_overlap_floor, users_by_reference, users_in_groups
from labeling.services import queue_admin
from labeling.services.queues import QueueCreated


def _tag_policies_field() -> forms.JSONField:
    """The sensitive-topic policies, as the new-queue and the settings forms both take them."""
    return forms.JSONField(
        label="Tag policies",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text='Sensitive topics, per prompt tag (JSON): {"politics": {"overlap": 5, "max_rater_share": 0.2}}. '
        "overlap: judgments wanted on items with the tag (the queue's overlap up to 50); max_rater_share: "
        "the most of them one rater may give (over 0, at most 1). Blank: none.",
    )


class ServiceErrorsMixin:
    """Show a service's error on the field it names (a field the form lacks: above the form)."""

    fields: dict[str, Any]

    def add_service_error(self, field: str | None, message: str) -> None:
        target = (field or "").split(".")[0]
        self.add_error(target if target in self.fields else None, message)  # type: ignore[attr-defined]


class WellbeingFields(forms.Form):
    """Rater wellbeing settings, as the new-queue and the settings forms both take them."""

    disturbing = forms.BooleanField(
        label="Disturbing",
        required=False,
        help_text="Red-team work or disturbing material: only raters who opted in (on their profile) are sent here.",
    )
    daily_cap = forms.IntegerField(
        label="Daily cap per rater",
        required=False,
        min_value=1,
        help_text="Items one rater may get per day (UTC). Blank: no cap.",
    )
    break_after = forms.IntegerField(
        label="Offer a break after",
        required=False,
        min_value=1,
        help_text="Items in a row (gaps under PREFLAB_BREAK_GAP_MINUTES) before a 'take a break' page. Blank: never.",
    )


class QueueCreateForm(PromptChoiceForm, WellbeingFields):
    """The new-queue page's form: the same request as ``POST /api/v1/queues/``."""

    # The page's order (its error summary lists the fields in this order too).
    field_order = [
        "name",
        "kind",
        "rubric",
        "overlap",
        "pairing",
        "size",
        "prompts_by",
        "tags",
        "collection",
        "ids",
        "dedupe",
        "similarity",
        "interleave",
    ]

    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(
        choices=[(k.value, k.label) for k in (Queue.Kind.PAIRWISE, Queue.Kind.RANKING)],
        initial=Queue.Kind.PAIRWISE,
    )
    rubric = forms.ModelChoiceField(queryset=Rubric.objects.order_by("name", "-version"))
    overlap = forms.IntegerField(
        initial=3,
        min_value=1,
        max_value=queue_admin.MAX_OVERLAP,
        help_text="Judgments wanted per comparison; 2 or more measure agreement.",
    )
    pairing = forms.ChoiceField(choices=Queue.Pairing.choices, initial=Queue.Pairing.ALL_PAIRS)
    size = forms.IntegerField(
        required=False,
        min_value=2,
        max_value=9,
        help_text="Responses per ranking task (K); pairs are always 2.",
    )
    members = ModelIdsField(
        queryset=User.objects.filter(role=User.Role.RATER, is_active=True).order_by("username"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Raters who may work on it.",
    )
    guidelines = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text="Markdown."
    )
    content_warning = forms.CharField(
        required=False,
        max_length=queue_admin.CONTENT_WARNING_MAX_LENGTH,
        help_text="Shown before each item; responses stay blurred until revealed.",
    )
    lease_seconds = forms.IntegerField(
        required=False, min_value=queue_admin.MIN_LEASE_SECONDS, help_text="Empty: 15 minutes."
    )
    max_open_leases = forms.IntegerField(initial=1, min_value=1, max_value=queue_admin.MAX_OPEN_LEASES)
    skip_policy = forms.ChoiceField(choices=Queue.SkipPolicy.choices, initial=Queue.SkipPolicy.OTHERS)
    gold_rate = forms.FloatField(
        initial=0.0, min_value=0.0, max_value=1.0, help_text="Share of gold items served."
    )
    priority = forms.IntegerField(initial=0)
    qualification = forms.ModelChoiceField(
        queryset=Queue.objects.order_by("name"),
        required=False,
        help_text="A queue whose gold items a rater must pass first.",
    )
    dedupe = forms.ChoiceField(
        label="Repeated responses",
        choices=Queue.Dedupe.choices,
        initial=Queue.Dedupe.EXACT,
        required=False,
        help_text="A comparison never shows one text twice; a left-out copy is recorded as tied with the one shown.",
    )
    similarity = forms.FloatField(
        required=False,
        min_value=0.01,
        max_value=1.0,
        help_text="With near-identical texts left out: how similar counts as the same (0..1, empty: 0.9).",
    )
    interleave = forms.BooleanField(
        required=False,
        initial=True,
        label="Interleave conversations",
        help_text="Hand items out so that a rater does not see one conversation back to back.",
    )
    tag_policies = _tag_policies_field()

    def create(self) -> QueueCreated:
        data = self.cleaned_data
        return services.queue_create_with_items(
            name=data["name"].strip(),
            rubric=data["rubric"],
            prompts=self.chosen_prompts(),
            members=data["members"],
            qualification=data["qualification"],
            **{key: data[key] for key in services.QUEUE_SETTINGS},
            dedupe=data["dedupe"] or Queue.Dedupe.EXACT,
            similarity=data["similarity"],
            interleave=data["interleave"],
        )


CATEGORY_CHOICES = [("", "None"), *ContentCategory.choices]


class QueueSettingsForm(ServiceErrorsMixin, WellbeingFields):
    """A queue's settings that are safe to change while raters work (``queue_update_settings``)."""

    prefix = "settings"  # field ids stay unique beside the members form on the dashboard

    overlap = forms.IntegerField(min_value=1, max_value=queue_admin.MAX_OVERLAP)
    lease_seconds = forms.IntegerField(
        label="Lease (seconds)",
        min_value=queue_admin.MIN_LEASE_SECONDS,
        help_text="How long a rater holds an item; leases already held keep theirs.",
    )
    max_open_leases = forms.IntegerField(
        label="Open leases per rater", min_value=1, max_value=queue_admin.MAX_OPEN_LEASES
    )
    priority = forms.IntegerField(help_text="Higher first among a rater's queues.")
    guidelines = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5}), help_text="Markdown shown to raters."
    )
    content_warning = forms.CharField(
        required=False,
        max_length=queue_admin.CONTENT_WARNING_MAX_LENGTH,
        help_text="Shown before each item; responses stay blurred until revealed.",
    )
    content_warning_category = forms.ChoiceField(
        label="Content warning category",
        choices=CATEGORY_CHOICES,
        required=False,
        help_text="Raters who opted out of it are not sent to this queue.",
    )
    gold_min_accuracy = forms.FloatField(
        label="Gold: pause under accuracy",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0..1: a rater whose gold accuracy here falls under it is paused from this queue. "
        "Blank: off.",
    )
    gold_min_items = forms.IntegerField(
        label="Gold: answers before pausing",
        min_value=1,
        required=False,
        help_text="Gold items answered before it applies (blank: unchanged).",
    )
    review_disagreement = forms.FloatField(
        label="Review: disagreement over",
        required=False,
        min_value=0,
        max_value=1,
        help_text="0..1: items whose share of judgments against the majority exceeds it go to review. "
        "Blank: only flagged items.",
    )
    tag_policies = _tag_policies_field()

    def __init__(self, *args: Any, queue: Queue, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial", {key: getattr(queue, key) for key in queue_admin.QUEUE_EDITABLE_SETTINGS}
        )
        super().__init__(*args, **kwargs)
        self.queue = queue
        floor = queue_overlap_floor(queue=queue)
        self.fields["overlap"].help_text = (
            f"Judgments wanted per item. It may grow; it may shrink down to {floor}, "
            "the most leases and judgments an item has now."
        )

    def clean_tag_policies(self) -> Any:
        value = self.cleaned_data.get("tag_policies")
        return {} if value is None else value  # blank: no policies

    def clean_gold_min_items(self) -> int:
        value = self.cleaned_data.get("gold_min_items")
        return self.queue.gold_min_items if value is None else value

    def changes(self) -> dict[str, Any]:
        """The settings that differ from the queue's (nothing else is written)."""
        return {key: value for key, value in self.cleaned_data.items() if value != getattr(self.queue, key)}


class QueueMembersForm(ServiceErrorsMixin, forms.Form):
    """Who works on the queue: usernames, plus everyone in the chosen Django groups."""

    prefix = "members"

    usernames = forms.CharField(
        label="Members (usernames)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Separated by commas, spaces or new lines. The queue's members become exactly these, "
        "plus the groups' users.",
    )
    groups = ModelIdsField(
        label="Add everyone in these groups",
        queryset=Group.objects.order_by("name"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Django groups (made in the Django admin).",
    )

    def __init__(self, *args: Any, queue: Queue, **kwargs: Any) -> None:
        names = sorted(queue.members.values_list("username", flat=True))
        kwargs.setdefault("initial", {"usernames": "\n".join(names)})
        super().__init__(*args, **kwargs)
        if not Group.objects.exists():
            del self.fields["groups"]

    def users(self) -> list[User]:
        """The users named, then the groups' users; ApplicationError names an unknown one."""
        refs = [r for r in re.split(r"[\s,]+", self.cleaned_data["usernames"]) if r]
        named = users_by_reference(refs=refs, field="usernames")
        return [*named, *users_in_groups(refs=self.cleaned_data.get("groups") or [])]
