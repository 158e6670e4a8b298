"""ChainStore: reopen, genesis binding, truncate, verify_store, and write failures that
must leave both the store and the in-memory ledger exactly as they were."""
from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils

from blockiot.chain.errors import StoreError
from blockiot.chain.genesis import Genesis
from blockiot.chain.ledger import Ledger
from blockiot.chain.state import encode_tuple
from blockiot.chain.store import ChainStore
from blockiot.chain.verify import verify_store


@pytest.fixture
def store(tmp_path):
    store = ChainStore(tmp_path / "node")
    yield store
    store.close()


def test_reopen_gives_same_head_and_state(tmp_path, make_ledger, signers, store):
    ledger = make_ledger(store)
    signers.build_blocks(ledger, range(1, 9))
    store.close()
    reopened_store = ChainStore(tmp_path / "node")
    reopened = make_ledger(reopened_store)
    assert reopened.head == ledger.head
    assert reopened.state.state_root() == ledger.state.state_root()
    assert reopened.state.tables == ledger.state.tables
    more = signers.build_blocks(reopened, [9])[0]  # and the chain goes on from there
    assert more.block.header.height == 9
    reopened_store.close()


def test_store_of_another_cluster_is_refused(make_ledger, store, genesis):
    make_ledger(store)
    other = Genesis("other-cluster", genesis.genesis_time, genesis.params, genesis.members)
    with pytest.raises(StoreError, match="different cluster"):
        Ledger(other, store)
    assert store.genesis() == genesis


def test_store_stores_raw_blocks_and_txs(make_ledger, signers, store):
    ledger = make_ledger(store)
    applied = signers.build_blocks(ledger, range(1, 4))
    assert list(store.raw_blocks()) == [
        (a.block.header.height, a.id, a.block.raw) for a in applied
    ]
    assert store.raw_block(2) == applied[1].block.raw and store.raw_block(4) is None
    rows = list(store.db.query("select height, idx, raw from txs order by height, idx"))
    assert [(r["height"], r["idx"], r["raw"]) for r in rows] == [
        (a.block.header.height, i, raw) for a in applied for i, raw in enumerate(a.block.txs)
    ]


def test_truncate_then_reapply(make_ledger, signers, store):
    ledger = make_ledger(store)
    applied = signers.build_blocks(ledger, range(1, 7))
    diffs = store.truncate(3)
    assert [d.changes for d in diffs] == [a.diff.changes for a in reversed(applied[3:])]
    assert store.head() == (3, applied[2].id, 3)
    assert list(store.db.query("select count(*) as n from txs where height > 3"))[0]["n"] == 0
    for diff in diffs:  # the in-memory side undoes the same diffs
        ledger.state.undo(diff)
    assert ledger.state.state_root() == applied[2].state_root

    reopened = make_ledger(store)  # the store's own rows agree
    assert reopened.head.id == applied[2].id
    assert reopened.state.state_root() == applied[2].state_root
    for a in applied[3:]:
        assert reopened.apply_block(a.block.raw).id == a.id
    assert reopened.state.state_root() == applied[-1].state_root
    assert verify_store(store).ok

    assert len(store.truncate(0)) == 6
    assert store.head() is None and not list(store.db.query("select * from state"))
    assert make_ledger(store).head.height == 0


def test_verify_store_ok_and_tampering_found(make_ledger, signers, store):
    ledger = make_ledger(store)
    signers.build_blocks(ledger, range(1, 6))
    report = verify_store(store)
    assert report.ok and (report.blocks, report.head_height) == (5, 5)
    assert report.txs == 10 and report.state_root == ledger.state.state_root()

    store.db.execute("update state set value = ? where tbl = 'reading'", [encode_tuple((1, 1))])
    store.db.conn.commit()
    report = verify_store(store)
    assert not report.ok and report.first_bad_height is None and "state rows differ" in report.problem

    store.db.execute("update blocks set id = ? where height = 4", [bytes(32)])
    store.db.conn.commit()
    report = verify_store(store)
    assert (report.ok, report.first_bad_height, report.blocks) == (False, 4, 3)
    assert "stored id" in report.problem


def test_unknown_state_table_in_store_is_refused(make_ledger, store):
    make_ledger(store)
    store.db["state"].insert({"tbl": "ghost", "key": encode_tuple((1,)), "value": encode_tuple((1,))})
    with pytest.raises(StoreError, match="unknown state table 'ghost'"):
        make_ledger(store)


def test_unopenable_store_is_a_store_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open chain store"):
        ChainStore(tmp_path / "file")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "chain.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StoreError, match="cannot open chain store"):
        ChainStore(tmp_path / "bad")


# --- write failures -------------------------------------------------------------------------


def _fail_on_txs_insert(monkeypatch):
    """Make the txs insert of the next block raise, after its block row was written."""
    original = sqlite_utils.db.Table.insert_all

    def insert_all(self, records, *args, **kwargs):
        if self.name == "txs":
            raise sqlite3.OperationalError("database or disk is full")
        return original(self, records, *args, **kwargs)

    monkeypatch.setattr(sqlite_utils.db.Table, "insert_all", insert_all)


@pytest.mark.parametrize("path", ["apply_block", "build_block"])
def test_injected_write_failure_keeps_everything(tmp_path, make_ledger, signers, store, monkeypatch, snapshot, path):
    ledger = make_ledger(store)
    signers.build_blocks(ledger, range(1, 4))
    source = make_ledger()  # the block to apply, built elsewhere on the same chain
    for _h, _i, raw in store.raw_blocks():
        source.apply_block(raw)
    block = signers.build_blocks(source, [4])[0]
    before = snapshot(ledger)

    with monkeypatch.context() as patch:
        _fail_on_txs_insert(patch)
        with pytest.raises(StoreError, match="nothing was kept: database or disk is full"):
            if path == "apply_block":
                ledger.apply_block(block.block.raw)
            else:
                ledger.build_block(signers.leader(ledger, 4), 4, block.block.txs)
    assert snapshot(ledger) == before
    assert store.head()[0] == 3
    assert not list(store.db.query("select * from blocks where height = 4"))

    on_disk = ChainStore(tmp_path / "node")  # another connection sees the same
    assert on_disk.head()[1] == before[0].id and verify_store(on_disk).ok
    on_disk.close()

    assert ledger.apply_block(block.block.raw).id == block.id  # once the disk has room again
    assert verify_store(store).ok


def test_full_database_refuses_block_and_keeps_state(make_ledger, signers, store, snapshot):
    """A real SQLITE_FULL: the database may not grow beyond its current pages."""
    ledger = make_ledger(store)
    signers.build_blocks(ledger, [1])
    page_count = list(store.db.query("PRAGMA page_count"))[0]["page_count"]
    store.db.execute(f"PRAGMA max_page_count = {page_count}")
    with pytest.raises(StoreError, match="full"):
        for slot in range(2, 500):  # blocks fit in free pages for a while; the first that does not fails
            before = snapshot(ledger)
            signers.build_blocks(ledger, [slot])
    assert snapshot(ledger) == before
    assert store.head()[1] == ledger.head.id
    assert verify_store(store).ok


def test_the_validators_lock_survives_a_reopen(tmp_path, store):
    assert store.lock() == -1
    store.set_lock(41)
    store.set_lock(57)
    store.close()
    again = ChainStore(tmp_path / "node")
    assert again.lock() == 57
    again.close()
