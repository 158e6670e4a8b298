"""`blockiot verify`: re-verify a whole stored chain from genesis."""
from __future__ import annotations

from pathlib import Path

from blockiot.chain.store import DB_NAME, ChainStore
from blockiot.chain.verify import verify_store
from blockiot.tools.cli import UserError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verify", help="re-verify a stored chain from genesis",
        description="Decode every stored block's raw signed bytes, check every signature and replay every "
                    "state change from genesis; report the first bad block, if any. Exit 1 when bad.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the node's data directory")
    parser.set_defaults(func=run)


def run(args) -> int:
    if not (args.data_dir / DB_NAME).exists():
        raise UserError(f"{args.data_dir} holds no chain store ({DB_NAME} not found)")
    store = ChainStore(args.data_dir)
    try:
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
