"""Errors of the rule language and the contract bytecode, each saying where the problem is."""
from __future__ import annotations

from blockiot.chain.errors import ChainError, DecodeError


class ContractError(ChainError):
    """Base of every contract error; its message is meant for the person who wrote the rule."""


class RuleError(ContractError):
    """A mistake in rule source, at a 1-based line and column, shown with the offending line."""

    def __init__(self, message: str, *, filename: str, line: int, column: int, source_line: str = ""):
        self.message = message
        self.filename = filename
        self.line = line
        self.column = column
        self.source_line = source_line
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.filename}:{self.line}:{self.column}: {self.message}"
        if not self.source_line:
            return head
        return f"{head}\n    {self.source_line}\n    {' ' * (self.column - 1)}^"


class RuleSyntaxError(RuleError):
    """The source is not well-formed, or uses a construct the rule language does not have."""


class RuleTypeError(RuleError):
    """The source is well-formed but mixes kinds of values or names something that does not exist."""


class BytecodeError(ContractError, DecodeError):
    """Deployed bytecode is malformed: wrong version, truncated, or pointing outside itself."""
