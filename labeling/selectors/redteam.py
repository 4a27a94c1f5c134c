"""Reads of the red-team data: which side of the data a confirmed attack feeds, and the attacks
that feed each side.

The side is a pure function of the attack's ``family`` (its session, its seed attack family, or
its imported conversation), so every variant of one attack is on one side, and it never moves:

    bucket = int(sha256("redteam" + NUL + family)[:8 bytes]) / 2**64
    side = "test" if bucket < PREFLAB_REDTEAM_TEST_FRACTION else "train"

Attacks from test-set runs (source ``eval``) replay test attacks: they measure a model and feed
neither side.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db.models import QuerySet

from labeling.models import Attack
from labeling.models.redteam import HARMFUL_OUTCOMES, Outcome

SIDES = ("train", "test")


def attack_side(*, family: str, test_fraction: float | None = None) -> str:
    """``train`` (training pairs) or ``test`` (the held-out red-team test set) for a family."""
    fraction = settings.PREFLAB_REDTEAM_TEST_FRACTION if test_fraction is None else test_fraction
    digest = hashlib.sha256(f"redteam\0{family}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < fraction else "train"


def attacks_confirmed(*, category: str | None = None) -> QuerySet[Attack]:
    """Confirmed attacks that feed the data (every source but test-set runs), oldest first."""
    found = Attack.objects.filter(status=Attack.Status.CONFIRMED).exclude(source=Attack.Source.EVAL)
    if category:
        found = found.filter(category=category)
    return found.order_by("id")


def attacks_on_side(*, side: str, category: str | None = None) -> list[Attack]:
    """Confirmed attacks (harmful outcomes and over-refusals) on one side of the split."""
    wanted = (*HARMFUL_OUTCOMES, Outcome.OVER_REFUSED)
    found = attacks_confirmed(category=category).filter(outcome__in=wanted)
    found = found.select_related("prompt", "reply", "target")
    return [a for a in found if attack_side(family=a.family) == side]
