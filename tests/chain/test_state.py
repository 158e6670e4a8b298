"""LedgerState: the cached state root always equals a fresh computation, rollback restores
exactly, and a diff undoes/redoes what its block did."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blockiot.chain.state import TABLES, LedgerState

keys = st.tuples(st.integers(0, 5), st.integers(0, 3))
values = st.none() | st.tuples(st.integers(-(2**40), 2**40), st.binary(max_size=4))
writes = st.lists(st.tuples(st.sampled_from(TABLES), keys, values), max_size=12)
# Each step: some writes, then "commit" or "rollback" of them, and a root check or not.
steps = st.lists(st.tuples(writes, st.booleans(), st.booleans()), min_size=1, max_size=8)

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def fresh_root(genesis, tables) -> bytes:
    state = LedgerState(genesis)
    for table, rows in tables.items():
        for key, value in rows.items():
            state.load(table, key, value)
    return state.state_root()


@SETTINGS
@given(steps)
def test_cached_root_matches_fresh_and_rollback_is_exact(genesis, steps):
    state = LedgerState(genesis)
    committed = []
    for step_writes, commit, check_root in steps:
        before = copy.deepcopy(state.tables)
        state.begin()
        for table, key, value in step_writes:
            state.set(table, key, value)
        if check_root:  # a root computed mid-block must not poison the cache
            assert state.state_root() == fresh_root(genesis, state.tables)
        if commit:
            diff = state.commit()
            committed.append((before, diff))
        else:
            state.rollback()
            assert state.tables == before
        assert state.state_root() == fresh_root(genesis, state.tables)
    for before, diff in reversed(committed):
        state.undo(diff)
        assert state.tables == before
        assert state.state_root() == fresh_root(genesis, before)


def test_empty_state_roots_agree(genesis):
    assert LedgerState(genesis).state_root() == fresh_root(genesis, {t: {} for t in TABLES})


def test_a_write_of_the_same_value_leaves_no_diff(genesis):
    state = LedgerState(genesis)
    state.load("nonce", (1,), (5,))
    state.begin()
    state.set("nonce", (1,), (6,))
    state.set("nonce", (1,), (5,))
    assert state.commit().changes == {}
