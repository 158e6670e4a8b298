"""Fixtures for contract tests: compile a rule (inline or from examples/contracts) and dry-run it."""
from __future__ import annotations

from pathlib import Path

import pytest

from blockiot.chain.contracts import compile_rule, load
from blockiot.chain.contracts.dryrun import DryRun, MemoryHost

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "contracts"
EXAMPLE_NAMES = ("irrigation", "energy", "street_lights", "cold_chain")


def example_source(name: str) -> str:
    return (EXAMPLES / f"{name}.rule").read_text()


@pytest.fixture
def example():
    """example(name) -> CompiledRule of examples/contracts/<name>.rule."""
    return lambda name: compile_rule(example_source(name), f"{name}.rule")


@pytest.fixture
def dry_run():
    """dry_run(source or CompiledRule, groups=..., **host fields) -> DryRun over a MemoryHost."""

    def make(rule, groups=None, **host) -> DryRun:
        compiled = compile_rule(rule, "test.rule") if isinstance(rule, str) else rule
        return DryRun(load(compiled.bytecode), MemoryHost(groups=dict(groups or {}), **host))

    return make
