"""Regenerate the zstandard dictionary shipped in the package (chain/sync.zdict).

It is trained (zstandard.train_dictionary) on sync batches of realistic generated chains:
demo clusters of several seeds and layouts, run for many slots. Every node must use the
same dictionary, so regenerate it only together with a protocol version change.

    python -m blockiot.tools.train_dictionary [--out chain/sync.zdict] [--size 4096]
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import zstandard

from blockiot.chain.compression import _BATCH, BATCH_VERSION
from blockiot.chain.ledger import Ledger
from blockiot.tools.demo_cluster import DEFAULT_LAYOUT, DemoCluster

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "chain" / "sync.zdict"


def generate_chain(seed: int, slots: int, layout=DEFAULT_LAYOUT) -> list[bytes]:
    """Raw blocks of a demo cluster run for `slots` slots, every slot filled by its leader."""
    cluster = DemoCluster(seed=seed, layout=layout)
    ledger = Ledger(cluster.genesis)
    rng = random.Random(seed)
    blocks = []
    for slot in range(1, slots + 1):
        txs = [t.raw for t in cluster.readings(fraction=rng.uniform(0.2, 1.0)) + cluster.commands()]
        leader = cluster.identity_of(ledger.leader_for_slot(slot))
        blocks.append(ledger.build_block(leader, slot, txs).block.raw)
    return blocks


def training_samples(seeds=range(1, 9), slots: int = 300) -> list[bytes]:
    layouts = [DEFAULT_LAYOUT, (("gateway", 3), ("probe", 20), ("valve", 5)), (("gateway", 1), ("battery", 6), ("light", 10))]
    rng = random.Random(0)
    samples = []
    for seed in seeds:
        blocks = generate_chain(seed, slots, layouts[seed % len(layouts)])
        i = 0
        while i < len(blocks):
            n = rng.choice((1, 5, 20, 50))
            samples.append(_BATCH.build({"version": BATCH_VERSION, "start_height": i + 1, "blocks": blocks[i:i + n]}))
            i += n
    return samples


def train(size: int = 4096) -> zstandard.ZstdCompressionDict:
    return zstandard.train_dictionary(size, training_samples())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the dictionary")
    parser.add_argument("--size", type=int, default=4096, help="dictionary size in bytes")
    args = parser.parse_args(argv)
    dictionary = train(args.size)
    args.out.write_bytes(dictionary.as_bytes())
    print(f"wrote {len(dictionary.as_bytes())} B dictionary (id {dictionary.dict_id()}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
