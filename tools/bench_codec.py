"""`blockiot bench codec`: sizes on air and validation speed of the chain's wire formats."""
from __future__ import annotations

import json
import time

from blockiot.chain.compression import shipped_codec
from blockiot.chain.ledger import Ledger
from blockiot.chain.state import LedgerState
from blockiot.tools.bench import add_benchmark, machine, print_figures
from blockiot.chain.wire import (
    Reading, Sensor, compact_from_block, decode_block, decode_tx, encode_header, sign_tx, tx_root,
)
from blockiot.tools.demo_cluster import DemoCluster
from blockiot.tools.options import positive_int
from blockiot.tools.train_dictionary import generate_chain


def register(bench_subparsers) -> None:
    parser = add_benchmark(
        bench_subparsers, "codec", help="wire sizes and tx validation speed",
        description="Measure sizes on air (reading tx, block header, compact block, JSON comparison, "
                    "sync batch compression) and full tx validation speed against bare Ed25519 verify.",
        run=run,
    )
    parser.add_argument("--txs", type=positive_int, default=5000, help="transactions for the speed figures")


def _block_as_json(block, applied=None, genesis=None, parent_id: bytes = b"") -> str:
    """The same block as compact JSON with hex for bytes, field for field. With `applied`
    and `genesis`, the self-describing form a JSON consumer that does not recompute
    anything needs: block id, full parent id, tx and state roots, sender keys, tx ids."""
    txs = []
    for raw in block.txs:
        tx = decode_tx(raw)
        entry = {"kind": tx.kind, "sender": tx.sender, "nonce": tx.nonce, "body": {
            k: (v.hex() if isinstance(v, bytes) else list(v) if isinstance(v, tuple) else v)
            for k, v in tx.body.__dict__.items()}, "signature": tx.signature.hex()}
        if applied is not None:
            entry.update(id=tx.id.hex(), sender=genesis.member(tx.sender).public_key.hex())
        txs.append(entry)
    h = block.header
    doc = {"version": h.version, "height": h.height, "slot": h.slot, "parent": h.parent_prefix.hex(),
           "signature": h.signature.hex(), "txs": txs}
    if applied is not None:
        doc.update(id=applied.id.hex(), parent=parent_id.hex(),
                   tx_root=tx_root(block.txs).hex(), state_root=applied.state_root.hex())
    return json.dumps(doc, separators=(",", ":"))


def measure(n_txs: int) -> dict:
    cluster = DemoCluster(seed=7, layout=(("gateway", 2), ("probe", 18)))
    genesis = cluster.genesis
    probe = next(d for d in cluster.devices if d.kind == "probe")
    reading = sign_tx(probe.identity, genesis.chain_id, probe.member.index, 1, Reading(Sensor.MOISTURE, 287))

    ledger = Ledger(genesis)
    parent = ledger.head.id
    txs = [t.raw for t in cluster.readings()][:20]
    applied = ledger.build_block(cluster.identity_of(ledger.leader_for_slot(1)), 1, txs)
    block = applied.block
    compact = compact_from_block(block, parent)
    header = encode_header(block.header)

    # Validation speed: the same signed messages, full path vs bare PyNaCl verify.
    signer = cluster.devices[2]
    batch = [sign_tx(signer.identity, genesis.chain_id, signer.member.index, i + 1, Reading(Sensor.MOISTURE, 200 + i % 50)).raw
             for i in range(n_txs)]
    state = LedgerState(genesis)
    t0 = time.perf_counter()
    for raw in batch:
        state.apply_tx(decode_tx(raw), 1)
    validate = n_txs / (time.perf_counter() - t0)
    verify_key = state._verify_keys[signer.member.index]
    messages = [(genesis.chain_id + raw[:-64], raw[-64:]) for raw in batch]
    t0 = time.perf_counter()
    for message, signature in messages:
        verify_key.verify(message, signature)
    raw_verify = n_txs / (time.perf_counter() - t0)

    chain = generate_chain(seed=11, slots=100)
    sync_frame = shipped_codec().pack_batch(1, chain)
    assert decode_block(block.raw) == block
    return {
        "reading_tx_bytes": len(reading.raw),
        "block_header_bytes": len(header),
        "compact_block_bytes_20tx": len(compact),
        "compact_bytes_per_tx": (len(compact) - len(header) - 1) / len(block.txs),
        "full_block_bytes_20tx": len(block.raw),
        "json_block_bytes_20tx": len(_block_as_json(block)),
        "json_ratio": round(len(block.raw) / len(_block_as_json(block)), 3),
        "json_ratio_self_describing": round(len(block.raw) / len(_block_as_json(block, applied, genesis, parent)), 3),
        "validate_tx_per_s": round(validate),
        "raw_verify_per_s": round(raw_verify),
        "validate_vs_raw": round(validate / raw_verify, 3),
        "sync_batch_ratio": round(len(sync_frame) / sum(len(b) for b in chain), 3),
        "sync_batch_bytes_100_blocks": len(sync_frame),
        "machine": machine(),
    }


def run(args) -> int:
    return print_figures(measure(args.txs), args.json)
