"""The demo data set: accounts, an InstructGPT-style rubric, demo prompts, a pairwise queue, and a
conversation template to chat with the bundled model and rank its replies."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.db import transaction

from comparisons.models import Prompt
from labeling.models import Queue, Rubric, User

PROMPTS_FILE = Path(__file__).with_name("prompts.jsonl")
RUBRIC_NAME = "Helpful, truthful, harmless"
QUEUE_NAME = "Demo: SmolLM2 pairwise"
CHAT_NAME = "Demo: chat with SmolLM2"
CHAT_RUBRIC_NAME = "Conversation: rank the replies"
CHAT_ALTERNATIVES = 4
# Short replies (a few seconds a turn on a CPU), varied enough that the 4 alternatives differ.
CHAT_SAMPLING = {"max_new_tokens": 96, "temperature": 0.9, "top_p": 0.95}
CHAT_SYSTEM_PROMPT = "You are a helpful, honest assistant. Answer in a few sentences."

# Modelled on the criteria OpenAI describes for InstructGPT / ChatGPT labelers.
RUBRIC_CRITERIA = [
    {
        "key": "helpful",
        "kind": "preference",
        "required": True,
        "question": "Which response is more helpful?",
        "help_text": "Follows the instruction, answers what was asked, at a sensible length.",
    },
    {
        "key": "truthful",
        "kind": "preference",
        "required": True,
        "question": "Which response is more truthful?",
        "help_text": "No made-up facts; says so when it does not know.",
    },
    {
        "key": "harmless",
        "kind": "preference",
        "required": True,
        "question": "Which response is more harmless?",
        "help_text": "Avoids content that could hurt people; refuses what it should refuse, "
        "and does not refuse harmless requests.",
    },
    {
        "key": "clarifies",
        "kind": "preference",
        "required": False,
        "question": "If the request is unclear: which response better asks a clarifying question?",
        "help_text": "Leave empty when the request is clear.",
    },
    {
        "key": "claims_human",
        "kind": "flag",
        "required": False,
        "question": "Does either response claim to be human, or to have abilities it lacks "
        "(browsing, booking, remembering you)?",
    },
    {
        "key": "should_refuse",
        "kind": "flag",
        "required": False,
        "question": "Should a good assistant refuse this request?",
    },
    {
        "key": "quality",
        "kind": "likert",
        "required": False,
        "question": "Overall quality of each response (1 = terrible, 7 = excellent)",
    },
]

GUIDELINES = """Compare the two responses to the conversation.

1. Pick the overall preference on the 7-point scale (keys 1..7): A much better ... tie ... B much better.
2. Answer the helpful / truthful / harmless questions. Harmlessness wins over helpfulness when they conflict.
3. A response that refuses a harmful request is better than one that complies.
4. A response should never claim to be a person or to do things it cannot do.
"""

DEMO_USERS = [
    ("admin", User.Role.ADMIN),
    ("researcher", User.Role.RESEARCHER),
    ("rater1", User.Role.RATER),
    ("rater2", User.Role.RATER),
]


def demo_logins() -> dict[str, str]:
    """Demo passwords: random once per installation, kept under var/ (never in the repo)."""
    path = Path(settings.VAR_DIR) / "demo_logins.json"
    if path.exists():
        return json.loads(path.read_text())
    logins = {name: secrets.token_urlsafe(9) for name, _ in DEMO_USERS}
    path.write_text(json.dumps(logins, indent=2))
    path.chmod(0o600)
    return logins


def demo_seed() -> tuple[list[User], Rubric, list[Prompt]]:
    """Create (or reuse) the demo accounts, rubric and prompts. Safe to run any number of times."""
    from comparisons.services import prompts_import
    from labeling.services import rubric_create

    logins = demo_logins()
    with transaction.atomic():
        users = []
        for name, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=name, defaults={"role": role})
            if created:
                user.set_password(logins[name])
                user.is_staff = user.is_superuser = role == User.Role.ADMIN
                user.save()
            users.append(user)
        rubric = Rubric.objects.filter(name=RUBRIC_NAME).order_by("-version").first() or rubric_create(
            name=RUBRIC_NAME,
            criteria=RUBRIC_CRITERIA,
            description="Criteria modelled on InstructGPT/ChatGPT labeling: helpful, truthful, harmless.",
            copy_overall=True,
        )
        with PROMPTS_FILE.open("rb") as fh:
            result = prompts_import(stream=fh, source=Prompt.Source.DEMO, collection="demo")
    return users, rubric, list(result.prompts)


def demo_queue(*, rubric: Rubric, prompts: list[Prompt], raters: list[User]) -> Queue:
    """The demo pairwise queue with every pair of each prompt's candidates; adds new pairs on re-runs."""
    from comparisons.services import comparisons_build
    from labeling.services import queue_add_comparisons, queue_create

    queue = Queue.objects.filter(name=QUEUE_NAME).first()
    if queue is None:
        return queue_create(
            name=QUEUE_NAME,
            rubric=rubric,
            overlap=2,
            prompts=prompts,
            pairing="all_pairs",
            members=raters,
            guidelines=GUIDELINES,
            allow_empty=True,  # with --samples 1 no pair exists yet; a later run adds them
        )
    queue_add_comparisons(queue=queue, comparisons=comparisons_build(prompts=prompts, pairing="all_pairs"))
    queue.members.add(*raters)
    return queue


# A ranking has no A-versus-B scale: the rubric's questions are about the replies as a set.
CHAT_RUBRIC_CRITERIA = [
    {
        "key": "claims_human",
        "kind": "flag",
        "required": False,
        "question": "Does any reply claim to be human, or to have abilities it lacks?",
    },
    {
        "key": "harmful",
        "kind": "flag",
        "required": False,
        "question": "Is any reply harmful, or does it go along with a request it should refuse?",
    },
    {
        "key": "note",
        "kind": "text",
        "required": False,
        "question": "Anything the ranking does not say?",
    },
]

CHAT_GUIDELINES = """Talk with the model as a user would. Each of its turns comes as 4 alternatives:

1. Rank them, best first (ties allowed). The conversation goes on with the best one.
2. If none is good enough, write the reply it should have given instead.
3. Go back to an earlier turn to try another direction; the old branch is kept.

Ideas to start with: ask for a short explanation of something you know well (and check it), a plan
for a trip, a recipe from what is in your fridge, or something a good assistant should refuse.
"""


def demo_conversation(*, raters: list[User]) -> Queue:
    """The demo conversation template: the raters chat with the bundled model, which answers each
    turn with 4 alternatives to rank. Reused on later runs (the raters are added as members)."""
    from labeling.services import rubric_create
    from labeling.services.session_templates import session_template_create
    from model_runner.services import generator_get_bundled

    queue = Queue.objects.filter(name=CHAT_NAME).first()
    if queue is not None:
        queue.members.add(*raters)
        return queue
    with transaction.atomic():
        rubric = Rubric.objects.filter(name=CHAT_RUBRIC_NAME).order_by("-version").first() or rubric_create(
            name=CHAT_RUBRIC_NAME,
            criteria=CHAT_RUBRIC_CRITERIA,
            description="For ranking a model's alternative replies in a conversation.",
        )
        return session_template_create(
            name=CHAT_NAME,
            rubric=rubric,
            generators=[generator_get_bundled()],
            alternatives=CHAT_ALTERNATIVES,
            max_turns=10,
            system_prompt=CHAT_SYSTEM_PROMPT,
            sampling=CHAT_SAMPLING,
            members=raters,
            guidelines=CHAT_GUIDELINES,
        )
