"""`blockiot demo`: the main job. Runs a demo cluster end to end with no hardware:

1. consensus on a simulated LoRa field: every device a node with a virtual radio (the
   real node core, link layer and Meshtastic flooding on the simulated medium);
2. the chain on disk: devices sign readings, leaders pack, sign and store blocks in the
   SQLite chain store, which is then re-verified from genesis;

and prints what it cost on air."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from blockiot.chain.compression import shipped_codec
from blockiot.chain.ledger import Ledger
from blockiot.chain.store import DB_NAME, ChainStore
from blockiot.chain.verify import verify_store
from blockiot.chain.wire import compact_from_block, encode_header
from blockiot.radio.airtime import meshtastic_time_on_air
from blockiot.hil.sim.fieldsim import SimConfig
from blockiot.hil.sim.scenarios import simulate
from blockiot.tools.cli import UserError
from blockiot.tools.demo_cluster import DemoCluster
from blockiot.tools.options import int_range, non_negative_int, positive_int, preset_name
from blockiot.tools.sim import summary


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="run a demo cluster (no hardware needed) and print its figures",
        description="1) Simulate a cluster of 20 devices with virtual LoRa radios for one hour of field "
                    "time: slots, compact blocks, finality, airtime, invariants. 2) Run a demo cluster "
                    "(gateways, weather station, soil probes, valves, batteries, street lights) whose devices "
                    "sign readings that each slot's leader packs, signs and stores; re-verify the stored chain "
                    "from genesis and print sizes and LoRa airtime.",
    )
    parser.add_argument("--slots", type=positive_int, default=120, help="slots of the chain run (default 120 = 1 h at 30 s)")
    parser.add_argument("--field-nodes", type=int_range(4), default=20,
                        help="devices in the field simulation, 4 of them validators (default 20)")
    parser.add_argument("--seed", type=non_negative_int, default=1, help="seed of the demo cluster and its readings")
    parser.add_argument("--data-dir", type=Path, help="keep the chain here (default: a temporary dir)")
    parser.add_argument("--preset", type=preset_name, default="LongFast", help="Meshtastic preset for airtime figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.data_dir and (args.data_dir / DB_NAME).exists():
        raise UserError(f"{args.data_dir} already holds a chain; choose an empty --data-dir")
    with tempfile.TemporaryDirectory(prefix="blockiot-demo-") as tmp:
        return _run(args, args.data_dir or Path(tmp))


def _run(args, data_dir: Path) -> int:
    say = (lambda *a: None) if args.json else print
    field = simulate(SimConfig(nodes=args.field_nodes, validators=4, hours=args.slots * 30 / 3600,
                               preset=args.preset, seed=args.seed, tx_interval_s=600.0))
    say(f"1. Consensus on a simulated LoRa field: {args.field_nodes} devices with virtual radios, one reading "
        "each per 10 min")
    say("   " + summary(field).replace("\n", "\n   "))
    say()
    cluster = DemoCluster(seed=args.seed)
    genesis = cluster.genesis
    store = ChainStore(data_dir)
    ledger = Ledger(genesis, store)
    say("2. The chain on disk: devices sign readings, each slot's leader packs, signs and stores a block")
    say(f"   cluster {genesis.name}: {len(genesis.members)} devices, {len(genesis.validators)} validators, "
        f"chain id {genesis.chain_id.hex()[:16]}…, each sensor reporting every ~5 min")
    t0 = time.perf_counter()
    tx_bytes = header_bytes = compact_bytes = full_bytes = txs = 0
    airtime = 0.0
    parent = ledger.head.id
    for slot in range(1, args.slots + 1):
        pending = [t.raw for t in cluster.readings(fraction=0.1) + cluster.commands()]
        leader = cluster.identity_of(ledger.leader_for_slot(slot))
        applied = ledger.build_block(leader, slot, pending)
        block = applied.block
        compact = compact_from_block(block, parent)
        parent = applied.id
        txs += len(block.txs)
        tx_bytes += sum(len(t) for t in block.txs)
        header_bytes += len(encode_header(block.header))
        compact_bytes += len(compact)
        full_bytes += len(block.raw)
        airtime += sum(meshtastic_time_on_air(len(t), args.preset) for t in block.txs)
        airtime += meshtastic_time_on_air(len(compact), args.preset)
        if slot % max(1, args.slots // 6) == 0 or slot == args.slots:
            say(f"   slot {slot:4d}: block {block.header.height} with {len(block.txs):2d} txs, "
                f"compact {len(compact)} B, state root {applied.state_root.hex()[:12]}…")
    build_s = time.perf_counter() - t0
    tail = [raw for _h, _i, raw in store.raw_blocks(max(1, ledger.height - 99))]
    batch = shipped_codec().pack_batch(max(1, ledger.height - 99), tail)
    report = verify_store(store)
    store.close()
    hours = args.slots * genesis.params.slot_seconds / 3600
    figures = {
        "blocks": ledger.height,
        "txs": txs,
        "avg_tx_bytes": round(tx_bytes / max(txs, 1), 1),
        "avg_header_bytes": round(header_bytes / ledger.height, 1),
        "avg_compact_block_bytes": round(compact_bytes / ledger.height, 1),
        "avg_full_block_bytes": round(full_bytes / ledger.height, 1),
        "sync_batch_ratio": round(len(batch) / sum(len(raw) for raw in tail), 3),
        "airtime_s_per_hour": round(airtime / hours, 1),
        "cluster_airtime_fraction": round(airtime / (hours * 3600), 4),
        "verify_ok": report.ok,
        "field": field,
        "wall_s": round(build_s, 2),
    }
    if args.json:
        print(json.dumps(figures))
    else:
        kept = f"stored in {data_dir}" if args.data_dir else "stored in a temporary dir (--data-dir keeps it)"
        print(f"   {figures['blocks']} blocks, {txs} txs in {build_s:.2f} s; {kept}")
        print(f"   on air: {figures['avg_tx_bytes']} B per tx, {figures['avg_header_bytes']} B per block header, "
              f"{figures['avg_compact_block_bytes']} B per compact block (full block: {figures['avg_full_block_bytes']} B)")
        print(f"   airtime on {args.preset}: {figures['airtime_s_per_hour']} s per hour for the cluster "
              f"({100 * figures['cluster_airtime_fraction']:.2f} % of the channel)")
        print(f"   verify from genesis: {'ok' if report.ok else 'BAD: ' + str(report.problem)}")
    healthy = report.ok and field["finalized_conflicts"] == 0 and field["finalized_prefix_agree"]
    return 0 if healthy else 1
