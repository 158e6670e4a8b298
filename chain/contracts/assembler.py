"""Assembler: instructions with symbolic labels -> code bytes, with the shortest jump encodings.

Jump operands are varints, so an instruction's size depends on the distance it jumps, which
depends on the sizes in between. Starting from the shortest encodings and re-laying out until
nothing moves converges (sizes only grow) and yields the canonical, minimal code.
"""
from __future__ import annotations

from dataclasses import dataclass

from blockiot.chain.contracts.bytecode import JUMPS, Op, encode_instruction


class Label:
    """A position in the code: placed by putting it in the item list, targeted by jumps and entries."""

    __slots__ = ("name",)

    def __init__(self, name: str = "") -> None:
        self.name = name


@dataclass(frozen=True)
class Emit:
    op: Op
    args: tuple[int | Label, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Assembled:
    code: bytes
    labels: dict[Label, int]
    lines: tuple[tuple[int, int], ...]  # (code offset, source line) for each instruction


def assemble(items: list[Emit | Label]) -> Assembled:
    emits = [i for i in items if isinstance(i, Emit)]
    sizes = {id(e): len(encode_instruction(e.op, tuple(0 if isinstance(a, Label) else a for a in e.args)))
             for e in emits}
    while True:
        labels: dict[Label, int] = {}
        offsets: dict[int, int] = {}
        pos = 0
        for item in items:
            if isinstance(item, Label):
                labels[item] = pos
            else:
                offsets[id(item)] = pos
                pos += sizes[id(item)]
        chunks: list[bytes] = []
        changed = False
        for e in emits:
            end = offsets[id(e)] + sizes[id(e)]
            args = tuple(
                (labels[a] - end if e.op in JUMPS and n == 0 else labels[a]) if isinstance(a, Label) else a
                for n, a in enumerate(e.args)
            )
            raw = encode_instruction(e.op, args)
            if len(raw) != sizes[id(e)]:
                sizes[id(e)] = len(raw)
                changed = True
            chunks.append(raw)
        if not changed:
            lines = tuple((offsets[id(e)], e.line) for e in emits)
            return Assembled(b"".join(chunks), labels, lines)
