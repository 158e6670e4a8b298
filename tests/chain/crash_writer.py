"""Writer for the crash-recovery test: applies a deterministic chain to a ChainStore,
resuming from whatever head the store holds, until done or killed.

    python crash_writer.py DATA_DIR

Prints "ready" once its workload is generated (just before opening the store), then
"done HEIGHT" when the whole chain is stored. The test imports `workload()` to replay
the same chain in memory.
"""
from __future__ import annotations

import sys

from blockiot.chain.genesis import Genesis
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import ChainStore
from blockiot.tools.demo_cluster import DemoCluster
from blockiot.tools.train_dictionary import generate_chain

SEED = 31
SLOTS = 300
LAYOUT = (("gateway", 2), ("weather", 1), ("probe", 3), ("valve", 1), ("battery", 1))


def workload() -> tuple[Genesis, list[bytes]]:
    return DemoCluster(seed=SEED, layout=LAYOUT).genesis, generate_chain(SEED, SLOTS, LAYOUT)


def main(data_dir: str) -> int:
    genesis, blocks = workload()
    print("ready", flush=True)
    store = ChainStore(data_dir)
    ledger = Ledger(genesis, store)
    for raw in blocks[ledger.height:]:
        ledger.apply_block(raw)
    print(f"done {ledger.height}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
