"""ChainStore: reopen, genesis binding, what is kept (each block once), verify_store, write
failures that must leave both the store and the in-memory ledger exactly as they were,
read-only opening, the schema upgrade, and files that are no chain store."""
from __future__ import annotations

import hashlib
import random
import sqlite3

import pytest
import sqlite_utils

from blockiot.chain.errors import StoreError
from blockiot.chain.genesis import Genesis
from blockiot.chain.ledger import Ledger
from blockiot.chain.state import encode_tuple
from blockiot.chain.store import DB_NAME, SCHEMA_VERSION, ChainStore
from blockiot.chain.verify import verify_store
from blockiot.chain.wire import tx_id


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


def test_store_keeps_each_block_once_and_reads_it_back(make_ledger, signers, store):
    ledger = make_ledger(store)
    applied = signers.build_blocks(ledger, [1, 2, 4])
    stored = [(a.block.header.height, a.id, a.block.raw) for a in applied]
    assert list(store.raw_blocks()) == stored
    assert list(store.raw_blocks(2, newest_first=True)) == stored[:0:-1]
    assert list(store.headers()) == [(a.block.header.height, a.id, a.block.header.slot) for a in applied]
    assert store.block(2) == (applied[1].id, applied[1].block.raw) and store.block(4) is None
    # every tx is kept once, inside its block's raw bytes: no table of txs, no undo data
    assert set(store.db.table_names()) == {"meta", "blocks", "state"}
    assert store.db["blocks"].columns_dict == {"height": int, "id": bytes, "slot": int, "raw": bytes}


def test_height_from_slot_finds_the_first_block_at_or_after_a_slot(make_ledger, signers, store):
    assert store.height_from_slot(0) is None
    signers.build_blocks(make_ledger(store), [2, 3, 7, 8, 20])
    assert [store.height_from_slot(s) for s in (0, 2, 3, 4, 7, 9, 20, 21)] == [1, 1, 2, 3, 3, 5, 5, None]


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


def _fail_on_state_write(monkeypatch):
    """Make the state rows' write of the next block raise, after its block row was written."""
    original = sqlite_utils.db.Table.upsert

    def upsert(self, record, *args, **kwargs):
        if self.name == "state":
            raise sqlite3.OperationalError("database or disk is full")
        return original(self, record, *args, **kwargs)

    monkeypatch.setattr(sqlite_utils.db.Table, "upsert", upsert)


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
        _fail_on_state_write(patch)
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


# --- read-only opening, the schema upgrade, files that are no chain store --------------------


@pytest.fixture
def chain_dir(tmp_path, make_ledger, signers):
    """A closed store of 5 blocks."""
    store = ChainStore(tmp_path / "chain")
    signers.build_blocks(make_ledger(store), range(1, 6))
    store.close()
    return tmp_path / "chain"


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_read_only_store_reads_beside_a_writer_and_never_writes(chain_dir, make_ledger, signers):
    before = digest(chain_dir / DB_NAME)
    reader = ChainStore(chain_dir, read_only=True)
    assert reader.head()[0] == 5 and verify_store(reader).ok
    assert digest(chain_dir / DB_NAME) == before
    with pytest.raises(StoreError, match="nothing was kept"):
        reader.set_lock(3)
    writer = ChainStore(chain_dir)
    ledger = make_ledger(writer)
    with reader.snapshot():  # one view for several reads, while the node goes on
        signers.build_blocks(ledger, [6])
        assert reader.head()[0] == 5
    assert reader.head()[0] == 6
    reader.close()
    writer.close()


def test_read_only_store_creates_nothing(tmp_path):
    for missing in (tmp_path / "absent" / "deeper", tmp_path):
        with pytest.raises(StoreError, match=r"holds no chain store \(chain.db not found\)"):
            ChainStore(missing, read_only=True)
    assert list(tmp_path.iterdir()) == []


def test_a_genesis_is_only_compared_read_only(tmp_path, chain_dir, genesis):
    reader = ChainStore(chain_dir, read_only=True)
    reader.bind(genesis)
    other = Genesis("other-cluster", genesis.genesis_time, genesis.params, genesis.members)
    with pytest.raises(StoreError, match="different cluster"):
        reader.bind(other)
    reader.close()
    ChainStore(tmp_path / "new").close()  # a store with no genesis yet
    with pytest.raises(StoreError, match="holds no chain"):
        ChainStore(tmp_path / "new", read_only=True).bind(genesis)


def make_schema_1(data_dir, applied) -> None:
    """Turn a schema 2 store into what schema 1 wrote: each tx again in `txs`, a diff per block."""
    with sqlite3.connect(data_dir / DB_NAME) as db:
        db.execute("alter table blocks add column diff blob")
        db.execute("create table txs (height integer, idx integer, id blob, raw blob, primary key (height, idx))")
        for a in applied:
            db.execute("update blocks set diff = ? where height = ?", [a.diff.encode(), a.block.header.height])
            db.executemany("insert into txs values (?, ?, ?, ?)",
                           [(a.block.header.height, i, tx_id(raw), raw) for i, raw in enumerate(a.block.txs)])
        db.execute("update meta set value = ? where key = 'schema'", [bytes([1])])
    db.close()


def test_a_schema_1_store_is_read_as_it_is_and_upgraded_when_opened_for_writing(tmp_path, make_ledger, signers):
    store = ChainStore(tmp_path / "old")
    ledger = make_ledger(store)
    applied = signers.build_blocks(ledger, range(1, 5))
    store.close()
    make_schema_1(tmp_path / "old", applied)
    blocks = [(a.block.header.height, a.id, a.block.raw) for a in applied]

    before = digest(tmp_path / "old" / DB_NAME)
    reader = ChainStore(tmp_path / "old", read_only=True)
    assert list(reader.raw_blocks()) == blocks and verify_store(reader).ok
    reader.close()
    assert digest(tmp_path / "old" / DB_NAME) == before

    upgraded = ChainStore(tmp_path / "old")
    assert set(upgraded.db.table_names()) == {"meta", "blocks", "state"}
    assert "diff" not in upgraded.db["blocks"].columns_dict
    assert upgraded._meta("schema") == bytes([SCHEMA_VERSION])
    assert list(upgraded.raw_blocks()) == blocks and verify_store(upgraded).ok
    reopened = make_ledger(upgraded)
    assert reopened.head == ledger.head and reopened.state.state_root() == ledger.state.state_root()
    signers.build_blocks(reopened, [5])
    upgraded.close()


def newer_schema(path):
    with sqlite3.connect(path) as db:
        db.execute("update meta set value = ? where key = 'schema'", [bytes([SCHEMA_VERSION + 1])])
    db.close()


def foreign_database(path):
    path.unlink()
    with sqlite3.connect(path) as db:
        db.execute("create table notes (x)")
    db.close()


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "malformed"),
        (lambda p: p.write_bytes(p.read_bytes()[:4096]), "malformed"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "malformed"),
        (lambda p: p.write_bytes(random.Random(1).randbytes(p.stat().st_size)), "not a database"),
        (lambda p: p.write_text("blocks\n" * 1000), "not a database"),
        (foreign_database, "not a BlockIoT chain store"),
        (newer_schema, f"schema {SCHEMA_VERSION + 1}, newer than the {SCHEMA_VERSION} this blockiot reads"),
    ],
    ids=["half", "first-page", "100-bytes", "random", "text", "foreign", "newer"],
)
def test_a_file_that_is_no_chain_store_is_one_clear_error_and_stays_as_it_was(chain_dir, genesis, spoil, message):
    path = chain_dir / DB_NAME
    spoil(path)
    before = digest(path)
    for read_only in (True, False):
        with pytest.raises(StoreError, match=message) as err:
            store = ChainStore(chain_dir, read_only=read_only)
            try:
                Ledger(genesis, store) if not read_only else verify_store(store)
            finally:
                store.close()
        assert "\n" not in str(err.value) and err.value.user_facing
        assert digest(path) == before


def test_a_damaged_row_is_a_store_error(chain_dir, genesis):
    with sqlite3.connect(chain_dir / DB_NAME) as db:
        db.execute("update blocks set raw = 'text' where height = 3")
        db.execute("update meta set value = x'00ff' where key = 'genesis'")
    db.close()
    store = ChainStore(chain_dir, read_only=True)
    with pytest.raises(StoreError, match="column raw of block 3 holds str, not bytes"):
        list(store.raw_blocks())
    with pytest.raises(StoreError, match="unreadable genesis"):
        verify_store(store)
    store.close()


def test_an_empty_file_is_no_store_to_read_and_a_new_store_to_write(chain_dir, genesis):
    (chain_dir / DB_NAME).write_bytes(b"")  # what a start killed before its first write leaves
    with pytest.raises(StoreError, match="not a BlockIoT chain store"):
        ChainStore(chain_dir, read_only=True)
    store = ChainStore(chain_dir)
    assert Ledger(genesis, store).height == 0
    store.close()
