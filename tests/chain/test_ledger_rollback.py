"""What a ledger keeps (issue 13): a block it fails to make or keep part way leaves it as it
was (the error reaches the caller, the head, state root and tables are unchanged, and the same
block can be made and applied afterwards as if nothing had happened); a ledger reopened on its
store goes on from the stored head and refuses another cluster's store; a block may hold
exactly the tx limit."""
from __future__ import annotations

import dataclasses

import pytest

from blockiot.chain.errors import StoreError
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import MAX_BLOCK_TXS, Reading, Sensor


class SignerOffline(Exception):
    """The leader's signing key could not be reached (a remote signer or a hardware token)."""


class OfflineSigner:
    """The leader's identity, whose signing fails: the ledger fails after applying the txs."""

    def __init__(self, identity):
        self.public_key = identity.public_key

    def sign(self, message: bytes) -> bytes:
        raise SignerOffline("signing key unreachable")


def readings(signers, count: int, first: int = 1) -> list[bytes]:
    return [signers.sign(2, Reading(Sensor.MOISTURE, 300 + n), nonce=first + n).raw for n in range(count)]


def test_a_build_whose_signing_fails_leaves_the_ledger_unchanged(make_ledger, signers, snapshot):
    ledger = make_ledger()
    signers.build_blocks(ledger, [1])
    before = snapshot(ledger)
    txs = readings(signers, 3, first=10)
    with pytest.raises(SignerOffline):
        ledger.build_block(OfflineSigner(signers.leader(ledger, 2)), 2, txs)
    assert snapshot(ledger) == before
    applied = ledger.build_block(signers.leader(ledger, 2), 2, txs)  # the same txs, nonces unspent
    assert list(applied.block.txs) == txs and ledger.height == 2


def test_a_build_whose_tx_source_fails_part_way_leaves_the_ledger_unchanged(make_ledger, signers, snapshot):
    ledger = make_ledger()
    before = snapshot(ledger)
    txs = readings(signers, 2)

    def mempool():
        yield from txs
        raise OSError("mempool file unreadable")

    with pytest.raises(OSError, match="mempool file unreadable"):
        ledger.build_block(signers.leader(ledger, 1), 1, mempool())
    assert snapshot(ledger) == before
    assert list(ledger.build_block(signers.leader(ledger, 1), 1, txs).block.txs) == txs


def test_a_block_built_after_a_failed_build_is_the_one_a_fresh_ledger_builds(make_ledger, signers):
    failed, fresh = make_ledger(), make_ledger()
    txs = readings(signers, 2)
    with pytest.raises(SignerOffline):
        failed.build_block(OfflineSigner(signers.leader(failed, 1)), 1, txs)
    leader = signers.leader(fresh, 1)
    assert failed.build_block(leader, 1, txs).block.raw == fresh.build_block(leader, 1, txs).block.raw
    assert failed.state.state_root() == fresh.state.state_root()


@pytest.fixture
def refusing_store(tmp_path):
    """A chain store whose next block write sqlite aborts (standing in for a full disk)."""
    store = ChainStore(tmp_path)
    yield store
    store.close()


def refuse_writes(store: ChainStore) -> None:
    store.db.execute("create trigger refuse before insert on blocks begin select raise(abort, 'disk full'); end")


def allow_writes(store: ChainStore) -> None:
    store.db.execute("drop trigger refuse")


@pytest.mark.parametrize("side", ["leader", "follower"])
def test_a_block_the_store_cannot_keep_is_undone(make_ledger, signers, snapshot, refusing_store, side):
    source, ledger = make_ledger(), make_ledger(refusing_store)
    for applied in signers.build_blocks(source, [1, 2]):
        ledger.apply_block(applied.block.raw)
    before = snapshot(ledger)
    block = source.build_block(signers.leader(source, 3), 3, readings(signers, 2, first=30)).block
    refuse_writes(refusing_store)
    with pytest.raises(StoreError, match="nothing was kept"):
        if side == "leader":
            ledger.build_block(signers.leader(ledger, 3), 3, list(block.txs))
        else:
            ledger.apply_block(block.raw)
    assert snapshot(ledger) == before
    assert refusing_store.head()[0] == 2
    allow_writes(refusing_store)
    assert ledger.apply_block(block.raw).id == source.head.id
    assert refusing_store.head()[0] == 3


def test_a_ledger_reopened_on_its_store_goes_on_from_the_stored_head(genesis, signers, tmp_path):
    store = ChainStore(tmp_path)
    first = Ledger(genesis, store)
    signers.build_blocks(first, [1, 2])
    store.close()
    store = ChainStore(tmp_path)
    reopened = Ledger(genesis, store)
    assert reopened.head == first.head and reopened.state.state_root() == first.state.state_root()
    (applied,) = signers.build_blocks(reopened, [3])
    assert applied.block.header.height == 3 and store.head()[0] == 3
    store.close()


def test_a_fresh_store_takes_the_ledgers_cluster_and_refuses_another(genesis, tmp_path):
    store = ChainStore(tmp_path)
    Ledger(genesis, store)
    assert store.genesis() == genesis
    other = dataclasses.replace(genesis, name="another-cluster")
    with pytest.raises(StoreError, match="a different cluster's chain"):
        Ledger(other, store)
    store.close()


def test_a_block_may_hold_exactly_the_tx_limit(make_ledger, signers):
    leader_side, follower = make_ledger(), make_ledger()
    txs = readings(signers, MAX_BLOCK_TXS + 1)
    applied = leader_side.build_block(signers.leader(leader_side, 1), 1, txs)
    assert list(applied.block.txs) == txs[:MAX_BLOCK_TXS]  # the last one waits for the next block
    assert follower.apply_block(applied.block.raw).id == applied.id
