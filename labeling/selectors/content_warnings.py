"""Content warnings: which an item carries and where each came from, and which a rater opted out of."""

from __future__ import annotations

from typing import Any

from labeling.models import Assignment, ContentCategory, Judgment, Queue, User

#: A prompt tag (set by an admin) or a judgment flag (set by a rater) ``cw:<category>`` puts a
#: content warning on every item showing that prompt.
CONTENT_WARNING_PREFIX = "cw:"
#: Rubric flag criteria / judgment flags that also count as a warning for later raters.
CONTENT_WARNING_FLAGS = {"harmful": "other", "disturbing": "other", "unsafe": "other", "nsfw": "sexual"}


def _warning_category(name: str) -> str | None:
    name = name.strip().lower()
    if name.startswith(CONTENT_WARNING_PREFIX):
        cat = name[len(CONTENT_WARNING_PREFIX) :]
        return cat if cat in ContentCategory.values else ContentCategory.OTHER.value
    if name in ContentCategory.values:
        return name
    return CONTENT_WARNING_FLAGS.get(name)


def content_warnings_for_assignment(*, assignment: Assignment) -> list[dict[str, Any]]:
    """The content warnings an item carries, one entry per category, with where each came from.

    Sources: the queue's setting (``queue``), ``cw:<category>`` tags an admin put on the prompt
    (``admin``), and flags earlier raters set on any judgment of the same prompt (``rater``): a
    ``cw:<category>`` judgment flag, or a true rubric flag named like a category (or ``harmful``,
    ``disturbing``, ``unsafe``, ``nsfw``). Other raters' answers are never shown, only the category.
    """
    queue = assignment.item.queue
    prompt = assignment.item.comparison.prompt
    found: dict[str, set[str]] = {}
    if queue.content_warning_category or queue.content_warning:
        found.setdefault(queue.content_warning_category or ContentCategory.OTHER.value, set()).add("queue")
    for tag in prompt.tags or []:
        if isinstance(tag, str) and tag.lower().startswith(CONTENT_WARNING_PREFIX):
            found.setdefault(_warning_category(tag) or ContentCategory.OTHER.value, set()).add("admin")
    earlier = (
        Judgment.objects.filter(assignment__item__comparison__prompt_id=prompt.pk)
        .exclude(assignment_id=assignment.pk)
        .values_list("flags", "criteria")
    )
    for flags, criteria in earlier:
        names = [f for f in flags or [] if isinstance(f, str)]
        names += [k for k, v in (criteria or {}).items() if v is True]
        for name in names:
            cat = _warning_category(name)
            if cat:
                found.setdefault(cat, set()).add("rater")
    labels = dict(ContentCategory.choices)
    return [
        {"category": cat, "label": labels[cat], "sources": sorted(found[cat])}
        for cat in ContentCategory.values
        if cat in found
    ]


def queue_opted_out_category(*, rater: User, queue: Queue) -> str | None:
    """The queue-wide warning category this rater opted out of, if any (then they are not sent there)."""
    cat = queue.content_warning_category or (ContentCategory.OTHER.value if queue.content_warning else "")
    return cat if cat and cat in (rater.content_opt_outs or []) else None
