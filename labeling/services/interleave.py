"""The order new queue items are created in, so that one prompt's items do not come back to back
(``Queue.interleave``; see ``labeling.services.queues`` for how rounds become priorities).

A pure function of prompt ids: it reads and writes nothing.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Sequence


def interleave_plan(prompts: Sequence[int], rounds: dict[int, list[int]]) -> list[tuple[int, int]]:
    """Creation order and round for new items, given the prompt of each (in build order) and the
    prompts of the queue's open items by round (round = -priority; in claim order within one).

    Returns ``(index into prompts, round)`` pairs in creation order. The claim order is by round,
    then id, so new items can join the order only after the last open item of a round (or before
    the first one, when rounds before it are free). The order is built greedily, as the classic
    rule for "no two alike in a row" does: next comes the prompt with the most items left, open
    and new together, that is not the prompt just before; the next open item goes first when it
    has at least as many. After the last open item, each new item gets a round of its own, which
    leaves a place after every item for items added later. For a new queue this gives the fewest
    back-to-back items possible. A prompt's items keep their build order. O((n + m) log p) for
    n new items of p prompts and m open items.
    """
    pending: dict[int, deque[int]] = {}
    for index, prompt in enumerate(prompts):
        pending.setdefault(prompt, deque()).append(index)
    ordered = sorted(rounds)
    left = Counter(prompts) + Counter(p for items in rounds.values() for p in items)  # open and new
    first_seen = {prompt: n for n, prompt in enumerate(pending)}
    # Prompts with new items, most items left first: entries go stale when ``left`` changes.
    heap = [(-left[p], first_seen[p], p) for p in pending]
    heapq.heapify(heap)
    plan: list[tuple[int, int]] = []
    before: int | None = None  # the prompt of the last item in claim order so far

    def best_new() -> int | None:
        """The prompt with new items and the most items left that is not ``before``."""
        skipped, found = [], None
        while heap:
            count, n, prompt = heapq.heappop(heap)
            if prompt not in pending or -count != left[prompt]:
                continue  # stale
            skipped.append((count, n, prompt))
            if prompt != before:
                found = prompt
                break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def emit(prompt: int, round_: int) -> None:
        nonlocal before
        plan.append((pending[prompt].popleft(), round_))
        if not pending[prompt]:
            del pending[prompt]
        left[prompt] -= 1
        heapq.heappush(heap, (-left[prompt], first_seen[prompt], prompt))
        before = prompt

    def place(round_: int, following: int) -> None:
        """New items after the open items of ``round_``, until ``following`` (the prompt of the next
        open item) should come."""
        while (prompt := best_new()) is not None:
            if following != before and left[following] >= left[prompt]:
                return
            emit(prompt, round_)

    if ordered and ordered[0] >= 1:  # round ordered[0] - 1 comes before every open item
        place(ordered[0] - 1, rounds[ordered[0]][0])
    for position, round_ in enumerate(ordered):
        for prompt in rounds[round_]:
            left[prompt] -= 1
            if prompt in pending:
                heapq.heappush(heap, (-left[prompt], first_seen[prompt], prompt))
            before = prompt
        # Rounds ahead of 0 hold items put ahead of everything: nothing joins them. After the last
        # open round, the new items left get rounds of their own (below).
        if round_ >= 0 and position + 1 < len(ordered):
            place(round_, rounds[ordered[position + 1]][0])
    tail = max(ordered[-1] + 1, 0) if ordered else 0
    while pending:
        pick = best_new()
        emit(next(iter(pending)) if pick is None else pick, tail)  # None: back to back it is
        tail += 1
    return plan
