"""`blockiot gov propose|vote|list|show|updates`: cluster governance from the command line.

`propose` and `vote` hand a signed PROPOSAL or VOTE to the node running on --data-dir
(docs/PROTOCOL.md §14); a proposal is named by its tx, `PROPOSER:NONCE`, which `propose`
prints. `list`, `show` and `updates` (the manifests the cluster approved) read the
finalized chain of a data dir (read-only, beside a running node or not), as tables or
`--json`. Devices do not report the version they run yet: `updates` shows what may be
installed, not who installed it.
"""
from __future__ import annotations

import json
from pathlib import Path

from blockiot.chain import governance
from blockiot.chain.runtime.control import NodeClient
from blockiot.chain.state import LedgerState
from blockiot.chain.store import ChainStore
from blockiot.chain.wire import (
    AddMember,
    ApproveUpdate,
    DeployRule,
    GrantValidator,
    RemoveMember,
    RetireRule,
    RevokeValidator,
    SetParam,
)
from blockiot.tools.cli import UserError
from blockiot.tools.options import non_negative_int, positive_int
from blockiot.tools.table import Column, add_format_flags, emit, output_format

ACTIONS = ("add-member", "remove-member", "grant-validator", "revoke-validator", "deploy-rule", "retire-rule",
           "set-param", "approve-update")


def register(subparsers) -> None:
    parser = subparsers.add_parser("gov", help="propose and vote on cluster changes; list proposals",
                                   description=__doc__.split("\n\n")[1])
    sub = parser.add_subparsers(dest="gov_command", metavar="ACTION", required=True)

    p = sub.add_parser("propose", help="propose a change (members, validators, rules, parameters, updates)")
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--member", help="the member concerned (name or index)")
    p.add_argument("--evidence", type=non_negative_int, help="slot of the member's recorded equivocation")
    p.add_argument("--key", help="add-member: the new device's public key (hex, `blockiot pubkey`)")
    p.add_argument("--name", help="add-member: its name")
    p.add_argument("--role", choices=("member", "validator"), default="member")
    p.add_argument("--groups", default="", help="add-member: comma-separated groups")
    p.add_argument("--hardware", type=non_negative_int, default=0, help="Meshtastic HardwareModel number")
    p.add_argument("--rule", type=Path, help="deploy-rule: the rule source (.rule)")
    p.add_argument("--deployer", help="retire-rule: who deployed it (name or index)")
    p.add_argument("--nonce", type=positive_int, help="retire-rule: its deploy tx's nonce")
    p.add_argument("--param", choices=("slot_seconds", "epoch_slots", "duty_cycle_bp", "max_block_txs"))
    p.add_argument("--value", type=positive_int, help="set-param: the new value")
    p.add_argument("--image", type=Path, help="approve-update: the firmware image (its size and digest go on chain)")
    p.add_argument("--version", type=non_negative_int, help="approve-update: the version number")
    p.add_argument("--chunk", type=positive_int, default=200, help="approve-update: chunk size in bytes")
    p.add_argument("--ttl", type=positive_int, help="slots the proposal stays open (default: two epochs)")
    p.add_argument("--data-dir", type=Path, required=True, help="the running node's data dir")
    p.set_defaults(func=run_propose)

    v = sub.add_parser("vote", help="vote yes on a proposal (not voting is no)")
    v.add_argument("proposal", help="PROPOSER:NONCE, as `propose` printed it")
    v.add_argument("--data-dir", type=Path, required=True, help="the running node's data dir")
    v.set_defaults(func=run_vote)

    for name, func, what in (("list", run_list, "proposals on the finalized chain"),
                             ("updates", run_updates, "software updates the cluster approved")):
        q = sub.add_parser(name, help=what)
        q.add_argument("--data-dir", type=Path, required=True, help="a node's data dir")
        add_format_flags(q)
        q.set_defaults(func=func)
    s = sub.add_parser("show", help="one proposal with its votes")
    s.add_argument("proposal", help="PROPOSER:NONCE")
    s.add_argument("--data-dir", type=Path, required=True, help="a node's data dir")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.set_defaults(func=run_show)


def run_propose(args) -> int:
    body = {"kind": "proposal", "action": args.action.replace("-", "_"), **_action_fields(args)}
    if args.ttl is not None:
        body["ttl"] = args.ttl
    answer = NodeClient(args.data_dir).submit_tx(body)
    print(f"{answer['sender']}:{answer['nonce']}  (tx {answer['tx']})")
    return 0


def _action_fields(args) -> dict:
    def need(*names):
        missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
        if missing:
            raise UserError(f"{args.action} needs {', '.join(missing)}")

    if args.action == "add-member":
        need("key", "name")
        groups = [g for g in args.groups.split(",") if g]
        return {"key": args.key, "name": args.name, "role": args.role, "groups": groups, "hardware": args.hardware}
    if args.action in ("remove-member", "revoke-validator", "grant-validator"):
        need("member")
        return {"member": args.member, "evidence": args.evidence}
    if args.action == "deploy-rule":
        need("rule")
        from blockiot.tools.contract import _compile  # the one place rule files are read and compiled

        return {"code": _compile(args.rule).bytecode.hex()}
    if args.action == "retire-rule":
        need("deployer", "nonce")
        return {"deployer": args.deployer, "nonce": args.nonce}
    if args.action == "set-param":
        need("param", "value")
        return {"param": args.param, "value": args.value}
    need("image", "version")
    try:
        image = args.image.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {args.image}: {exc.strerror}") from None
    return {"version": args.version, "hardware": args.hardware, "size": len(image), "chunk": args.chunk,
            "digest": governance.image_digest(image, args.chunk).hex()}


def run_vote(args) -> int:
    proposer, nonce = _proposal_id(args.proposal)
    print(NodeClient(args.data_dir).submit({"kind": "vote", "proposer": proposer, "nonce": nonce}))
    return 0


def _proposal_id(text: str) -> tuple[str, int]:
    proposer, _, nonce = text.rpartition(":")
    if not proposer or not nonce.isdigit():
        raise UserError(f"a proposal is named PROPOSER:NONCE (as `propose` printed it), not {text!r}")
    return proposer, int(nonce)


def _finalized_state(data_dir: Path) -> tuple[LedgerState, int]:
    store = ChainStore(data_dir, read_only=True)
    try:
        state = LedgerState(store.genesis())
        head = store.load_into(state)
    finally:
        store.close()
    return state, (head[2] if head else -1)


def describe_action(state: LedgerState, action) -> str:
    name = state.genesis.name_of
    if isinstance(action, AddMember):
        groups = f" in {','.join(action.groups)}" if action.groups else ""
        return f"add {action.name} as {'validator' if action.role else 'member'}{groups} (key {action.key.hex()[:8]})"
    if isinstance(action, (RemoveMember, RevokeValidator)):
        verb = "remove" if isinstance(action, RemoveMember) else "revoke validator"
        cited = f", equivocation at slot {action.evidence}" if action.evidence is not None else ""
        return f"{verb} {name(action.member)}{cited}"
    if isinstance(action, GrantValidator):
        return f"make {name(action.member)} a validator"
    if isinstance(action, DeployRule):
        return f"deploy a rule ({len(action.code)} B of bytecode)"
    if isinstance(action, RetireRule):
        return f"retire rule {name(action.deployer)}:{action.nonce}"
    if isinstance(action, SetParam):
        return f"set {governance.Param(action.param).name.lower()} to {action.value}"
    if isinstance(action, ApproveUpdate):
        return f"approve update v{action.version} for hardware {action.hardware} ({action.size} B)"
    return type(action).__name__


def _row(state: LedgerState, info: governance.ProposalInfo) -> dict:
    validators = governance.validators_at(state, info.slot if info.status != "open" else info.expiry)
    return {
        "proposal": f"{state.genesis.name_of(info.proposer)}:{info.nonce}",
        "status": info.status,
        "action": describe_action(state, info.action),
        "yes": len(info.yes),
        "of": len(validators),
        "expiry_slot": info.expiry,
        "effect_slot": info.slot if info.status in ("enacted", "void") else None,
        "voters": [state.genesis.name_of(v) for v in info.yes],
    }


def run_list(args) -> int:
    state, _slot = _finalized_state(args.data_dir)
    rows = [_row(state, governance.proposal(state, p, n)) for (p, n) in sorted(state.tables["proposal"])]
    columns = [Column("proposal"), Column("status"), Column("yes", "YES"), Column("of", "OF"),
               Column("expiry_slot", "EXPIRES"), Column("effect_slot", "EFFECT"), Column("action")]
    emit(rows, columns, output_format(args))
    return 0


def run_show(args) -> int:
    proposer, nonce = _proposal_id(args.proposal)
    state, _slot = _finalized_state(args.data_dir)
    index = proposer if proposer.isdigit() else next(
        (m.index for m in state.genesis.members if m.name == proposer), None)
    info = None if index is None else governance.proposal(state, int(index), nonce)
    if info is None:
        raise UserError(f"no proposal {args.proposal} on the finalized chain of {args.data_dir}")
    row = _row(state, info)
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        for key, value in row.items():
            print(f"{key:12} {', '.join(value) if isinstance(value, list) else value}")
    return 0


def run_updates(args) -> int:
    state, _slot = _finalized_state(args.data_dir)
    rows = [{"hardware": hardware, "version": version, "since_slot": since, "size": size, "chunk": chunk,
             "digest": digest.hex()}
            for (hardware, version), (since, size, chunk, digest) in sorted(state.tables["update"].items())]
    columns = [Column("hardware"), Column("version"), Column("since_slot", "SINCE"), Column("size"), Column("chunk"),
               Column("digest", text=lambda d: d[:16])]
    emit(rows, columns, output_format(args))
    return 0

