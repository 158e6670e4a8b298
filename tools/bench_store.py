"""`blockiot bench store`: the chain store's bytes on disk against the raw chain, `verify`
time, and the memory a node's core holds as the chain grows."""
from __future__ import annotations

import gc
import random
import tempfile
import time
import tracemalloc
from pathlib import Path

from blockiot.chain.compression import default_codec
from blockiot.chain.consensus.finalized import MemoryChain
from blockiot.chain.consensus.messages import GetBlocks, encode_message
from blockiot.chain.consensus.node import NodeCore
from blockiot.chain.consensus.recovery import restore
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore
from blockiot.chain.verify import verify_store
from blockiot.chain.wire import PARENT_PREFIX_LEN
from blockiot.tools.bench import add_benchmark, machine, print_figures
from blockiot.tools.demo_cluster import DemoCluster
from blockiot.tools.options import positive_int

CHECKPOINT = 1000  # blocks at which the figures are also taken


def register(bench_subparsers) -> None:
    parser = add_benchmark(
        bench_subparsers, "store", help="chain store bytes on disk, verify time, node memory",
        description="Build the demo cluster's chain (each sensor reporting every ~5 min, as `blockiot demo`) "
                    "into a chain store; print bytes on disk per block and per tx against the raw blocks' "
                    "bytes, `verify` time per 1,000 blocks, and the memory (tracemalloc) a node's core holds "
                    "once restored from the store and answering a catch-up from height 1, at 1,000 blocks and "
                    "at --blocks; beside it what a disk-less node's in-memory chain holds. The store is "
                    "written with synchronous=OFF to build faster: the same file.",
        run=run,
    )
    parser.add_argument("--blocks", type=positive_int, default=10_000, help="blocks in the chain (default 10000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the demo cluster and its readings")


def _disk_bytes(store: ChainStore) -> int:
    """chain.db and its write-ahead log, once checkpointed (not the -shm file: SQLite's
    32 KiB shared-memory index of the log, whatever the chain)."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = store.path.with_name(store.path.name + "-wal")
    return store.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _traced_kib(build) -> float:
    """KiB allocated by `build()` and still held by what it returns (after a first run, so
    that what a process makes once on first use is not counted, and without garbage)."""
    build()
    gc.collect()
    tracemalloc.start()
    try:
        kept = build()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del kept
    return round(held / 1024, 1)


def _restored_core(genesis, store: ChainStore) -> NodeCore:
    """A core restored from the store, having answered a catch-up from height 1."""
    ledger, finalized = restore(genesis, store)
    now = float(genesis.genesis_time + (ledger.head.slot + 1) * genesis.params.slot_seconds)
    core = NodeCore(genesis, radio_id=1, rng=random.Random(1), now=now, ledger=ledger, finalized=finalized)
    out = core.receive(encode_message(GetBlocks(1, 1, ledger.head.id[:PARENT_PREFIX_LEN])), now, origin=2, hops=0)
    if not out.sends:
        raise RuntimeError("the restored core did not answer the catch-up; the benchmark would measure the wrong path")
    return core


def measure(n_blocks: int, seed: int) -> dict:
    cluster = DemoCluster(seed=seed)
    genesis = cluster.genesis
    default_codec()  # made once per process: not part of what a core holds
    figures: dict = {"blocks": n_blocks}
    disk_vs_raw, core_kib, chain_kib = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="blockiot-bench-store-") as tmp:
        store = ChainStore(Path(tmp))
        store.db.execute("PRAGMA synchronous=OFF")
        ledger = Ledger(genesis, store)
        raw_bytes = tx_bytes = txs = disk = 0
        for slot in range(1, n_blocks + 1):
            pending = [t.raw for t in cluster.readings(fraction=0.1) + cluster.commands()]
            block = ledger.build_block(cluster.identity_of(ledger.leader_for_slot(slot)), slot, pending).block
            raw_bytes += len(block.raw)
            tx_bytes += sum(len(raw) for raw in block.txs)
            txs += len(block.txs)
            if slot in (min(CHECKPOINT, n_blocks), n_blocks):
                at = f"{slot}_blocks"
                disk = _disk_bytes(store)
                disk_vs_raw[at] = round(disk / raw_bytes, 2)
                core_kib[at] = _traced_kib(lambda: _restored_core(genesis, store))
                chain_kib[at] = _traced_kib(lambda: MemoryChain(store.raw_blocks()))
        store.close()
        reader = ChainStore(Path(tmp), read_only=True)
        t0 = time.perf_counter()
        report = verify_store(reader)
        verify_s = time.perf_counter() - t0
        reader.close()
    if not report.ok:
        raise RuntimeError(f"the benchmark's chain does not verify: {report.problem}")
    figures.update(
        txs=txs,
        avg_tx_bytes=round(tx_bytes / max(txs, 1), 1),
        raw_bytes_per_block=round(raw_bytes / n_blocks, 1),
        disk_bytes_per_block=round(disk / n_blocks, 1),
        raw_bytes_per_tx=round(raw_bytes / max(txs, 1), 1),  # the raw chain's bytes, headers included
        disk_bytes_per_tx=round(disk / max(txs, 1), 1),
        disk_vs_raw=disk_vs_raw,
        verify_s_per_1k_blocks=round(verify_s * 1000 / n_blocks, 3),
        node_core_kib=core_kib,
        memory_chain_kib=chain_kib,
        machine=machine(),
    )
    return figures


def run(args) -> int:
    return print_figures(measure(args.blocks, args.seed), args.json)
