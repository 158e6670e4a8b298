"""The finality rule of docs/PROTOCOL.md §6.2 as pure functions of the slots along a chain.

A block is seen here as a `Vote`: its slot, its source `src` (the slot of the highest
justified block below it) and `just` (the slot of the highest justified block of its
chain, itself included). Everything is computed from slots alone, so every node holding a
chain reaches the same verdict, and a restarted node can rebuild it from stored headers.

    v = vote_of(tail, slot, parent_just, n, q)     # a new block on top of `tail`
    x = final_slot(tail + [v], n, q)               # the highest slot this block makes final
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Iterable, Sequence

GENESIS_SLOT = -1


@dataclass(frozen=True)
class Vote:
    slot: int
    src: int
    just: int


GENESIS_VOTE = Vote(GENESIS_SLOT, GENESIS_SLOT, GENESIS_SLOT)


def vote_of(tail: Sequence[Vote], slot: int, parent_just: int, n: int, q: int) -> Vote:
    """The `Vote` of a new block of `slot` whose chain ends with `tail` (ascending slots; at
    least the blocks whose window holds `slot`, i.e. slots >= slot - n, may be more) and
    whose parent's chain has highest justified slot `parent_just`."""
    src = parent_just
    just = src
    for i, a in enumerate(tail):
        if a.slot < slot - n or a.slot <= src or a.slot <= just:
            continue  # the new block is outside a's window, or votes for a do not count
        votes = 1 + sum(1 for v in tail[i + 1 :] if v.slot <= a.slot + n and v.src < a.slot)
        if votes >= q:
            just = a.slot
    return Vote(slot, src, just)


def final_slot(tail: Sequence[Vote], n: int, q: int, above: int = GENESIS_SLOT) -> int | None:
    """The highest slot of a block of this chain that is final (§6.2) and above slot
    `above`, considering only windows that hold the newest block `tail[-1]` (earlier windows
    were judged when their blocks arrived). `tail` is the chain's blocks above `above`, in
    ascending slot order. None if the newest block finalizes nothing new."""
    if not tail:
        return None
    slots = [v.slot for v in tail]
    newest = slots[-1]
    best: int | None = None
    for T in range(newest - n, newest):
        lo = bisect_right(slots, T)
        window = sorted((v.just for v in tail[lo:]), reverse=True)  # blocks in (T, newest], newest <= T + n
        if len(window) < q:
            continue
        bound = min(T, window[q - 1])
        i = bisect_right(slots, bound) - 1
        if i < 0:
            continue
        x = slots[i]
        if (best is None or x > best) and _dense(slots, x, T, n, q):
            best = x
    return best


def _dense(slots: list[int], first: int, last: int, n: int, q: int) -> bool:
    """Every slot e in [first, last] has at least q blocks with slots in (e, e + n]."""
    for e in range(last, first - 1, -1):
        if bisect_right(slots, e + n) - bisect_right(slots, e) < q:
            return False
    return True


def replay(slots: Iterable[int], n: int, q: int) -> list[Vote]:
    """The `Vote`s of the last blocks of a chain (those within `n` slots of the last one,
    which later blocks' votes need) given all its slots from the first block after the
    genesis: a restarted node's finalized chain. [genesis' vote] if empty."""
    window: list[Vote] = [GENESIS_VOTE]
    for slot in slots:
        last = window[-1]
        window = [v for v in window if v.slot >= slot - n]
        window.append(vote_of(window, slot, last.just, n, q))
    return window
