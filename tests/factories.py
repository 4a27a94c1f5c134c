"""factory_boy factories for every model tests touch."""

from __future__ import annotations

import importlib
from datetime import timedelta

import factory
from django.utils import timezone

from comparisons.models import Candidate, Comparison, ComparisonCandidate, Prompt, messages_hash
from labeling.models import (
    Assignment,
    Attack,
    Criterion,
    HarmCategory,
    Judgment,
    Queue,
    QueueItem,
    Rubric,
    User,
)
from model_runner.models import GenerationJob, Generator

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = User.Role.RATER
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class RaterFactory(UserFactory):
    role = User.Role.RATER


class ResearcherFactory(UserFactory):
    role = User.Role.RESEARCHER


class AdminFactory(UserFactory):
    role = User.Role.ADMIN
    is_staff = True
    is_superuser = True


class RubricFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rubric

    name = factory.Sequence(lambda n: f"rubric-{n}")
    version = 1


class CriterionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Criterion

    rubric = factory.SubFactory(RubricFactory)
    key = factory.Sequence(lambda n: f"criterion_{n}")
    question = "Which response is more helpful?"
    kind = Criterion.Kind.PREFERENCE
    required = False
    position = factory.Sequence(lambda n: n)


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    messages = factory.Sequence(lambda n: [{"role": "user", "content": f"Question number {n}?"}])
    source = Prompt.Source.IMPORT
    content_hash = factory.LazyAttribute(lambda o: messages_hash(o.messages))


class GeneratorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Generator
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"model-{n}")
    backend = Generator.Backend.IMPORTED


class GenerationJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GenerationJob

    samples_per_prompt = 2


class CandidateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Candidate

    prompt = factory.SubFactory(PromptFactory)
    generator = factory.SubFactory(GeneratorFactory)
    sample_index = factory.Sequence(lambda n: n)
    text = factory.Sequence(lambda n: f"Answer number {n}.")
    finish_reason = Candidate.FinishReason.IMPORTED


def make_comparison(prompt: Prompt, candidates: list[Candidate]) -> Comparison:
    """A comparison of the given candidates (in this order) of one prompt."""
    comparison = Comparison.objects.create(
        prompt=prompt,
        size=len(candidates),
        candidate_key=",".join(str(c.pk) for c in sorted(candidates, key=lambda c: c.pk)),
    )
    ComparisonCandidate.objects.bulk_create(
        ComparisonCandidate(comparison=comparison, candidate=c, position=i) for i, c in enumerate(candidates)
    )
    return comparison


def make_pair(
    prompt: Prompt | None = None, texts: tuple[str, str] = ("Left answer.", "Right answer.")
) -> Comparison:
    prompt = prompt or PromptFactory()
    generator = GeneratorFactory()
    candidates = [
        CandidateFactory(prompt=prompt, generator=generator, sample_index=i, text=t)
        for i, t in enumerate(texts)
    ]
    return make_comparison(prompt, candidates)


class QueueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Queue
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"queue-{n}")
    rubric = factory.SubFactory(RubricFactory)
    overlap = 1

    @factory.post_generation
    def members(obj, create, extracted, **kwargs):  # noqa: N805
        if create and extracted:
            obj.members.add(*extracted)


class QueueItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = QueueItem

    queue = factory.SubFactory(QueueFactory)
    comparison = factory.LazyFunction(make_pair)


class AssignmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Assignment

    item = factory.SubFactory(QueueItemFactory)
    rater = factory.SubFactory(RaterFactory)
    shown_order = factory.LazyAttribute(
        lambda o: list(o.item.comparison.members.order_by("position").values_list("candidate_id", flat=True))
    )
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))


class JudgmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Judgment

    assignment = factory.SubFactory(AssignmentFactory, status=Assignment.Status.SUBMITTED)
    rubric = factory.LazyAttribute(lambda o: o.assignment.item.queue.rubric)
    preference = -2


def harm_categories_seed() -> None:
    """The default harm taxonomy migration 0011 seeds (a transactional test's flush empties it)."""
    seeded = importlib.import_module("labeling.migrations.0011_redteam_wellbeing_tag_policies")
    for position, (key, label) in enumerate(seeded.DEFAULT_HARM_CATEGORIES):
        HarmCategory.objects.get_or_create(key=key, defaults={"label": label, "position": position})


class ReviewerFactory(UserFactory):
    role = User.Role.REVIEWER
    disturbing_opt_in = True


class ReviewQueueFactory(QueueFactory):
    """A red-team review queue (kind ``redteam``), marked disturbing as such queues are."""

    name = factory.Sequence(lambda n: f"redteam-review-{n}")
    kind = Queue.Kind.REDTEAM
    disturbing = True


class AttackFactory(factory.django.DjangoModelFactory):
    """A pending attack: a harmful request and a reply that complied."""

    class Meta:
        model = Attack

    queue = factory.SubFactory(ReviewQueueFactory)
    source = Attack.Source.ADVERSARY
    prompt = factory.SubFactory(
        PromptFactory,
        messages=factory.Sequence(lambda n: [{"role": "user", "content": f"How do I pick lock number {n}?"}]),
    )
    reply = factory.LazyAttribute(
        lambda o: CandidateFactory(prompt=o.prompt, text="First, insert a tension wrench...")
    )
    target = factory.LazyAttribute(lambda o: o.reply.generator)
    family = factory.Sequence(lambda n: f"family-{n}")
    outcome = "complied"
    claimed_outcome = "complied"
    category = "illegal"
    tactic = "role_play"
    severity = 3


def api_key_for(user, *, name: str = "test key", expires_in_days: int | None = None) -> str:
    """A new API key for ``user``, as ``Authorization: Token <key>`` takes it (the key is shown only
    when made; the database keeps its digest)."""
    from labeling.services.api_keys import api_key_create

    return api_key_create(user=user, name=name, expires_in_days=expires_in_days)[1]
