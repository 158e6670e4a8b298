"""`blockiot verify`: re-verify a whole stored chain from genesis, reading the store
read-only (also beside a running node). A file that is no readable chain store is a
one-line error, exit 2; a chain that fails verification, exit 1."""
from __future__ import annotations

from pathlib import Path

from blockiot.chain.genesis import load_genesis_toml
from blockiot.chain.store import ChainStore
from blockiot.chain.verify import verify_store


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="re-verify a stored chain from genesis",
        description="Decode every stored block's raw signed bytes, check every signature and replay every "
                    "state change from genesis; report the first bad block, if any. Exit 1 when bad, 2 when "
                    "the data dir holds no readable chain store. Reads only: the store is never changed.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the node's data directory")
    parser.add_argument("--genesis", type=Path, help="also require the chain to be this cluster's (genesis TOML)")
    parser.set_defaults(func=run)


def run(args) -> int:
    genesis = load_genesis_toml(args.genesis) if args.genesis else None
    store = ChainStore(args.data_dir, read_only=True)
    try:
        if genesis is not None:
            store.bind(genesis)
        report = verify_store(store)
    finally:
        store.close()
    if report.ok:
        print(f"ok: {report.blocks} blocks, {report.txs} txs verified from genesis; "
              f"head {report.head_height}, state root {report.state_root.hex()}")
        return 0
    where = f"block {report.first_bad_height}" if report.first_bad_height else "state"
    print(f"BAD at {where}: {report.problem}")
    print(f"({report.blocks} blocks before it verified)")
    return 1
