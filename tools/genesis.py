"""`blockiot genesis`: turn a cluster description (TOML) into a genesis and a data dir."""
from __future__ import annotations

from pathlib import Path

from blockiot.chain.genesis import load_genesis_toml
from blockiot.chain.store import ChainStore
from blockiot.radio.airtime import preset_display_names
from blockiot.radio.dutycycle import REGULATED_REGIONS
from blockiot.tools.cli import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "genesis", help="create a cluster's genesis from a TOML description",
        description="Read a cluster description ([cluster] name, genesis_time, slot_seconds, epoch_slots, "
                    "region, preset; one [[member]] per device with name, public_key, role, groups), "
                    "print its chain id, and with --data-dir start a chain store for it. "
                    f"Regions (the node has airtime rules for these): {', '.join(REGULATED_REGIONS)}. "
                    f"Presets: {', '.join(preset_display_names())}.",
    )
    parser.add_argument("toml", type=Path, help="cluster description")
    parser.add_argument("--data-dir", type=Path, help="create (or check) a chain store for this genesis")
    parser.add_argument("--out", type=Path, help="also write the encoded genesis to this file")
    parser.set_defaults(func=run)


def run(args) -> int:
    genesis = load_genesis_toml(args.toml)
    print(f"cluster   {genesis.name}")
    print(f"chain id  {genesis.chain_id.hex()}")
    print(f"members   {len(genesis.members)} ({len(genesis.validators)} validators)")
    print(f"genesis   {len(genesis.encoded)} B encoded")
    if args.out:
        try:
            args.out.write_bytes(genesis.encoded)
        except OSError as exc:
            raise UserError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        print(f"wrote {args.out}")
    if args.data_dir:
        store = ChainStore(args.data_dir)
        try:
            store.bind(genesis)
        finally:
            store.close()
        print(f"chain store ready in {args.data_dir}")
    return 0
