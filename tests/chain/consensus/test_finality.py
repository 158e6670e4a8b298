"""The finality arithmetic (PROTOCOL §6.2): votes, justification, density and finality as
functions of the slots along a chain, checked against a direct transcription of the
definitions on random chains, plus the latency figures the protocol page states."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blockiot.chain.consensus.finality import GENESIS_SLOT, Vote, final_slot, replay, vote_of


def quorum(n: int) -> int:
    return n - (n - 1) // 3


def incremental(slots: list[int], n: int) -> tuple[list[Vote], int | None]:
    """Votes of a chain built block by block as a node does, and its highest final slot."""
    q = quorum(n)
    votes: list[Vote] = []
    final = None
    for slot in slots:
        parent_just = votes[-1].just if votes else GENESIS_SLOT
        votes.append(vote_of([v for v in votes if v.slot >= slot - n], slot, parent_just, n, q))
        above = GENESIS_SLOT if final is None else final
        found = final_slot([v for v in votes if v.slot > above], n, q, above=above)
        if found is not None:
            final = found
    return votes, final


def by_definition(slots: list[int], n: int) -> tuple[list[tuple[int, int]], int | None]:
    """(src, J) of every block and the highest final slot, straight from the definitions."""
    q = quorum(n)
    src: list[int] = []
    just: list[int] = []
    for k, slot in enumerate(slots):
        src.append(just[k - 1] if k else GENESIS_SLOT)
        justified = [GENESIS_SLOT]
        for i in range(k):  # is block i justified by blocks i+1..k?
            votes = [j for j in range(i + 1, k + 1) if slots[i] < slots[j] <= slots[i] + n and src[j] < slots[i]]
            if len(votes) >= q:
                justified.append(slots[i])
        just.append(max(justified))

    def dense(e: int) -> bool:
        return sum(1 for s in slots if e < s <= e + n) >= q

    final = None
    for i, x in enumerate(slots):
        for T in range(x, slots[-1] + 1):
            late = [j for j in range(len(slots)) if T < slots[j] <= T + n and just[j] >= x]
            if all(dense(e) for e in range(x, T + 1)) and len(late) >= q:
                final = x
    return list(zip(src, just)), final


chains = st.lists(st.integers(min_value=1, max_value=3), min_size=1, max_size=40).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))]
)


@settings(max_examples=300, deadline=None)
@given(slots=chains, n=st.sampled_from([1, 2, 4, 5, 7]))
def test_the_incremental_rule_is_the_definition(slots, n):
    votes, final = incremental(slots, n)
    expected, expected_final = by_definition(slots, n)
    assert [(v.src, v.just) for v in votes] == expected
    assert final == expected_final


@settings(max_examples=200, deadline=None)
@given(slots=chains, n=st.sampled_from([4, 7]))
def test_replay_of_a_stored_chain_gives_the_same_votes(slots, n):
    votes, _ = incremental(slots, n)
    window = replay(slots, n, quorum(n))
    assert window[-1] == votes[-1]
    assert [v for v in window if v.slot != GENESIS_SLOT] == [v for v in votes if v.slot >= slots[-1] - n]


@pytest.mark.parametrize("n, latency", [(4, 5), (7, 9), (10, 13), (16, 21)])
def test_lossless_finality_takes_2q_minus_1_slots(n, latency):
    slots = list(range(1, 4 * n))
    q = quorum(n)
    votes: list[Vote] = []
    finalized_at = {}
    final = GENESIS_SLOT
    for slot in slots:
        parent_just = votes[-1].just if votes else GENESIS_SLOT
        votes.append(vote_of(votes[-n:], slot, parent_just, n, q))
        found = final_slot([v for v in votes if v.slot > final], n, q, above=final)
        if found is not None:
            for s in range(final + 1, found + 1):
                finalized_at[s] = slot
            final = found
    assert latency == 2 * q - 1
    assert {at - s for s, at in finalized_at.items() if s > 0} == {latency}


def test_a_vote_does_not_count_for_a_block_at_or_below_its_source():
    # Slots 1..4 of a 4-validator chain: slot 4 justifies slot 1 (votes 2, 3, 4).
    votes = [vote_of([], 1, GENESIS_SLOT, 4, 3)]
    for slot in (2, 3, 4):
        votes.append(vote_of(votes, slot, votes[-1].just, 4, 3))
    assert votes[-1] == Vote(4, GENESIS_SLOT, 1)
    # A block whose source is already slot 2 does not vote for slot 2.
    assert vote_of([Vote(2, 0, 0), Vote(3, 0, 0), Vote(4, 2, 2)], 5, 2, 4, 3).just == 2


def test_nothing_is_final_without_q_blocks_that_saw_it_justified():
    n, q = 4, 3
    # Justified blocks, but the blocks after them never carry J >= their slot (gaps).
    tail = [Vote(1, -1, -1), Vote(2, -1, -1), Vote(3, -1, -1), Vote(4, -1, 1), Vote(9, 1, 1)]
    assert final_slot(tail, n, q) is None
    assert final_slot([], n, q) is None
