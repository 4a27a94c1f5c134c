"""Checking a queue's per-tag policies (``Queue.tag_policies``; their meaning is in
``labeling.selectors.tag_policies``). One rule for every door: queue creation and settings, through
the API and the ``/manage/`` forms alike (``queue_create_with_items``, ``queue_update_settings``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from comparisons.records import MAX_TAG_LENGTH
from labeling.errors import ApplicationError, Conflict
from labeling.models import Queue, QueueItem
from labeling.selectors.tag_policies import capped_tags, queue_tag_work

#: The highest overlap a tag may ask for (as a queue's own overlap).
MAX_TAG_OVERLAP = 50
POLICY_KEYS = ("overlap", "max_rater_share")


def queue_tag_policies_clean(value: Any, *, overlap: int) -> dict[str, dict[str, Any]]:
    """``value`` as stored, or ApplicationError (400) naming the offending key, e.g.
    ``tag_policies.politics.overlap``.

    ``value`` is an object (``None``: no policies) whose keys are prompt tags (non-empty, at most
    the tag length, stripped) and whose values are objects with ``overlap`` (a whole number from
    the queue's ``overlap`` up to 50) and/or ``max_rater_share`` (a number over 0, at most 1); no
    other key, and at least one of the two.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApplicationError(
            'tag_policies: must be an object of tag: policy, e.g. {"politics": {"overlap": 5}}',
            field="tag_policies",
        )
    clean: dict[str, dict[str, Any]] = {}
    for raw_tag, policy in value.items():
        tag = raw_tag.strip() if isinstance(raw_tag, str) else ""
        name = f"tag_policies.{tag or raw_tag}"
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise ApplicationError(f"{name}: a tag is 1 to {MAX_TAG_LENGTH} characters", field=name)
        if tag in clean:
            raise ApplicationError(f"{name}: given twice", field=name)
        if not isinstance(policy, Mapping) or not policy:
            raise ApplicationError(
                f"{name}: must be an object with overlap and/or max_rater_share", field=name
            )
        unknown = sorted(str(k) for k in policy if k not in POLICY_KEYS)
        if unknown:
            raise ApplicationError(
                f"{name}.{unknown[0]}: unknown (a policy has overlap and/or max_rater_share)",
                field=f"{name}.{unknown[0]}",
            )
        cleaned: dict[str, Any] = {}
        if "overlap" in policy:
            n = policy["overlap"]
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            if isinstance(n, bool) or not isinstance(n, int) or not overlap <= n <= MAX_TAG_OVERLAP:
                raise ApplicationError(
                    f"{name}.overlap: must be a whole number from {overlap} (the queue's overlap)"
                    f" to {MAX_TAG_OVERLAP}",
                    field=f"{name}.overlap",
                )
            cleaned["overlap"] = n
        if "max_rater_share" in policy:
            s = policy["max_rater_share"]
            if (
                isinstance(s, bool)
                or not isinstance(s, int | float)
                or not math.isfinite(s)
                or not 0 < s <= 1
            ):
                raise ApplicationError(
                    f"{name}.max_rater_share: must be a number over 0 and at most 1",
                    field=f"{name}.max_rater_share",
                )
            cleaned["max_rater_share"] = float(s)
        clean[tag] = cleaned
    return dict(sorted(clean.items()))


def queue_tag_policies_check_change(
    *, queue: Queue, overlap: int, policies: dict[str, dict[str, Any]]
) -> None:
    """Refuse (Conflict, 409) new policies that the work already done would break: an item whose
    leases and judgments exceed its new overlap, or a rater whose work on a tag exceeds its new
    share cap. Called by ``queue_update_settings`` under the queue's row lock; it first locks the
    items whose room depends on the policies (``claimed`` at or over the queue's overlap), so a
    claim skips them until the change is committed and then reads the new policies (the claim
    reads them in its statement)."""
    list(
        QueueItem.objects.select_for_update(of=("self",))
        .filter(queue=queue, is_gold=False, claimed__gte=overlap)
        .values_list("pk", flat=True)
    )
    work = queue_tag_work(queue_id=queue.pk, overlap=overlap, policies=policies)
    for item_id, tags, claimed, room in work.items_over:
        tag = next((t for t in sorted(tags or []) if t in (queue.tag_policies or {})), None)
        name = f"tag_policies.{tag}.overlap" if tag else "tag_policies"
        raise Conflict(
            f"{name}: item {item_id} already has {claimed} leases and judgments (more than {room})",
            field=name,
        )
    for tag in capped_tags(policies):
        tally = work.tags[tag]
        if tally.cap is not None and tally.most > tally.cap:
            name = f"tag_policies.{tag}.max_rater_share"
            raise Conflict(
                f"{name}: a rater already holds {tally.most} of the {tally.target} judgments wanted on"
                f" '{tag}' (the share would allow {tally.cap})",
                field=name,
            )
