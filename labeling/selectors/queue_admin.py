"""Reads behind running a queue (``labeling.services.queue_admin``): how low its overlap may go,
and the users named as its members, by username (or id) and by Django group."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import Group
from django.db.models import Max, Q

from labeling.errors import ApplicationError, id_or_none
from labeling.models import Queue, QueueItem, User


def queue_overlap_floor(*, queue: Queue) -> int:
    """The lowest overlap the queue may be given now: the highest ``claimed`` (live leases plus
    judgments) of any of its real (not gold) items, retired ones included, and at least 1."""
    highest = QueueItem.objects.filter(queue=queue, is_gold=False).aggregate(m=Max("claimed"))["m"]
    return max(1, highest or 0)


def users_by_reference(*, refs: Iterable[str | int], field: str = "members") -> list[User]:
    """Users by username or id, in the given order without repeats; unknown ones are named in one
    error on ``field``."""
    wanted = [str(r).strip() for r in refs if str(r).strip()]
    pk = User._meta.get_field("id")
    ids = [i for i in (id_or_none(r, pk) for r in wanted) if i is not None]
    found = list(User.objects.filter(Q(username__in=wanted) | Q(pk__in=ids)))
    by_name = {u.username: u for u in found}
    by_id = {str(u.pk): u for u in found}
    users: dict[int, User] = {}
    missing = []
    for ref in wanted:
        user = by_name.get(ref) or by_id.get(ref)
        if user is None:
            missing.append(ref)
        else:
            users.setdefault(user.pk, user)
    if missing:
        raise ApplicationError(
            f"{field}: no user named {', '.join(repr(m) for m in missing[:10])}", field=field
        )
    return list(users.values())


def users_in_groups(*, refs: Iterable[str | int | Group], field: str = "groups") -> list[User]:
    """Every user in these Django groups (by name, id or object); unknown groups are named."""
    groups: list[Group] = []
    missing = []
    for ref in refs:
        if isinstance(ref, Group):
            groups.append(ref)
            continue
        text = str(ref).strip()
        pk = id_or_none(text, Group._meta.get_field("id"))
        query = Q(name=text) | (Q(pk=pk) if pk is not None else Q(pk__in=[]))
        group = Group.objects.filter(query).first()
        if group is None:
            missing.append(text)
        else:
            groups.append(group)
    if missing:
        raise ApplicationError(
            f"{field}: no group named {', '.join(repr(m) for m in missing[:10])}", field=field
        )
    if not groups:
        return []
    return list(User.objects.filter(groups__in=groups).distinct().order_by("username"))
