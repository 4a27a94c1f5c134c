"""Writes a rater makes about themselves: the content categories they do not want to see."""

from __future__ import annotations

from labeling.errors import ApplicationError
from labeling.models import ContentCategory, User


def rater_set_content_opt_outs(*, rater: User, categories: list[str]) -> User:
    """Save the content categories a rater does not want to see. Unknown names are refused."""
    unknown = sorted(set(categories) - set(ContentCategory.values))
    if unknown:
        raise ApplicationError(f"content_opt_outs: unknown category {unknown[0]!r}", field="content_opt_outs")
    rater.content_opt_outs = [c for c in ContentCategory.values if c in set(categories)]
    rater.save(update_fields=["content_opt_outs"])
    return rater
