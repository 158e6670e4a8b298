"""Equivocation evidence: two headers one leader signed for one slot, each with the fields
its signature covers, so anyone can check it with nothing but the genesis
(docs/PROTOCOL.md §8). It travels as a consensus message and is recorded on chain by an
EVIDENCE transaction (chain/state.py), which anyone can check against the genesis alone.

Evidence::

    slot      varint
    2 x proof version u8, height varint, parent 32 B, tx_root 32 B, state_root 32 B,
              signature 64 B
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from construct import Bytes, Int8ub, Struct, Terminated, VarInt

from blockiot.radio.codec import decoding, encoding

from .crypto import HASH_LEN, SIGNATURE_LEN, verify
from .errors import ChainError, DecodeError, EncodeError
from .genesis import Genesis
from .wire import MAX_VARINT, block_id, header_signing_bytes, tx_root


class InvalidEvidence(ChainError):
    """Evidence that does not prove an equivocation (bad signature, different slots, same block)."""


@dataclass(frozen=True)
class HeaderProof:
    """A block header as its leader signed it (the fields `header_signing_bytes` covers)."""

    version: int
    height: int
    parent: bytes
    tx_root: bytes
    state_root: bytes
    signature: bytes

    def signing_bytes(self, chain_id: bytes, slot: int) -> bytes:
        return header_signing_bytes(
            chain_id, self.version, self.height, slot, self.parent, self.tx_root, self.state_root
        )


@dataclass(frozen=True)
class Evidence:
    """Two different headers for `slot`, in canonical order (by block id)."""

    slot: int
    first: HeaderProof
    second: HeaderProof


_PROOF = Struct(
    "version" / Int8ub,
    "height" / VarInt,
    "parent" / Bytes(HASH_LEN),
    "tx_root" / Bytes(HASH_LEN),
    "state_root" / Bytes(HASH_LEN),
    "signature" / Bytes(SIGNATURE_LEN),
)
EVIDENCE = Struct("slot" / VarInt, "first" / _PROOF, "second" / _PROOF, Terminated)


def proof_of(applied, parent_id: bytes) -> HeaderProof:
    """The header proof of a block this node validated (a ledger AppliedBlock: it knows the
    parent and both roots)."""
    h = applied.block.header
    return HeaderProof(h.version, h.height, parent_id, tx_root(applied.block.txs), applied.state_root, h.signature)


def make_evidence(chain_id: bytes, slot: int, a: HeaderProof, b: HeaderProof) -> Evidence:
    """Evidence from two proofs of one slot, ordered by block id so it has one encoding."""
    if block_id(a.signing_bytes(chain_id, slot)) > block_id(b.signing_bytes(chain_id, slot)):
        a, b = b, a
    return Evidence(slot, a, b)


def encode_evidence(ev: Evidence) -> bytes:
    with encoding("evidence", EncodeError):
        return EVIDENCE.build({"slot": ev.slot, "first": ev.first.__dict__, "second": ev.second.__dict__})


def decode_evidence(raw: bytes) -> Evidence:
    with decoding("evidence", DecodeError):
        c = EVIDENCE.parse(bytes(raw))
    if c.slot > MAX_VARINT or c.first.height > MAX_VARINT or c.second.height > MAX_VARINT:
        raise DecodeError("evidence slot or height out of range")
    proofs = [
        HeaderProof(p.version, p.height, bytes(p.parent), bytes(p.tx_root), bytes(p.state_root), bytes(p.signature))
        for p in (c.first, c.second)
    ]
    return Evidence(c.slot, proofs[0], proofs[1])


def verify_evidence(
    genesis: Genesis,
    ev: Evidence,
    leader_for_slot: Callable[[int], int],
    public_key: Callable[[int], bytes | None] | None = None,
) -> int:
    """Check the evidence; return the registry index of the equivocating leader.

    `public_key` maps a registry index to its key (default: the genesis members'; the
    ledger passes its registry, which governance changes). Raises InvalidEvidence unless
    both headers are validly signed by the leader of the slot and name different blocks.
    """
    chain_id = genesis.chain_id
    leader = leader_for_slot(ev.slot)
    key = public_key(leader) if public_key is not None else genesis.member(leader).public_key
    ids = []
    for proof in (ev.first, ev.second):
        signing = proof.signing_bytes(chain_id, ev.slot)
        if not verify(key, signing, proof.signature):
            raise InvalidEvidence(f"evidence for slot {ev.slot}: a header is not signed by the slot's leader {leader}")
        ids.append(block_id(signing))
    if ids[0] == ids[1]:
        raise InvalidEvidence(f"evidence for slot {ev.slot}: both headers name the same block")
    if ids[0] > ids[1]:
        raise InvalidEvidence(f"evidence for slot {ev.slot}: headers not in canonical order")
    return leader
