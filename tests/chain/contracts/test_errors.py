"""Rule mistakes are reported as typed errors pointing at line and column, with a hint."""
from __future__ import annotations

import pytest

from blockiot.chain.contracts import RuleError, RuleSyntaxError, RuleTypeError, compile_rule
from blockiot.chain.errors import ChainError

HEAD = "valve = device(3)\nstate.n = 0\n"  # two lines every case below starts with

CASES = [
    # (body after HEAD, error class, line, column, fragment of the message)
    ("with reading(moisture as p:\n    pass\n", RuleSyntaxError, 3, 23, "invalid syntax"),
    ("import os\n", RuleSyntaxError, 3, 1, "the top level holds"),
    ("with every(10):\n    state.n = nn + 1\n", RuleTypeError, 4, 15, "unknown name `nn`"),
    ("with every(10):\n    state.n = 1.5\n", RuleTypeError, 4, 15, "state.n is an int, not a fixed"),
    ("with every(10):\n    if state.n:\n        pass\n", RuleTypeError, 4, 8, "must be true or false"),
    ("with reading(moisure) as p:\n    pass\n", RuleTypeError, 3, 14, "did you mean `moisture`"),
    ("with every(10):\n    command(valve, opne, 600)\n", RuleTypeError, 4, 20, "did you mean `open`"),
    ("with every(10):\n    command(valve, open, 1.5)\n", RuleTypeError, 4, 26, "whole numbers"),
    ("with every(10):\n    state.n = 0.0001\n", RuleTypeError, 4, 15, "more than 3 decimal places"),
    ("with every(10):\n    state.n = 1 // 0\n", RuleTypeError, 4, 15, "division by zero"),
    ("with every(10):\n    f = lambda: 1\n", RuleSyntaxError, 4, 9, "not part of the rule language"),
    ("with every(10):\n    state.m = 1\n", RuleTypeError, 4, 5, "state.m is not declared"),
    ("with every(10):\n    x = valve + 1\n", RuleTypeError, 4, 9, "works on numbers, not on a device"),
    ("with every(10):\n    x = valve < device(2)\n", RuleTypeError, 4, 9, "only be compared with == and !="),
    ("def f(x: int) -> int:\n    if x > 0:\n        return 1\nwith every(10):\n    pass\n",
     RuleTypeError, 3, 1, "can reach its end without returning"),
    ("def f(x) -> int:\n    return x\nwith every(10):\n    pass\n", RuleTypeError, 3, 7, "say what kind of value"),
    ("with every(10):\n    state.n = f(1)\n", RuleTypeError, 4, 15, "unknown function `f`"),
    ("with every(10):\n    break\n", RuleTypeError, 4, 5, "outside a loop"),
    ("with every(10) as tick:\n    pass\n", RuleTypeError, 3, 19, "a schedule has no transaction"),
    ("with reading(light) as r:\n    x = r.sender\n", RuleTypeError, 4, 9, "not `.sender`"),
    ("with transaction(data) as t:\n    x = t.value\n", RuleTypeError, 4, 9, "has `.device`, not `.value`"),
    ("with every(10):\n    slot = 3\n", RuleTypeError, 4, 5, "built-in name"),
    ("with every(10):\n    x = 1\n    x = valve\n", RuleTypeError, 5, 5, "holds an int; it cannot also hold a device"),
    ("with every(10):\n    state.n + 1\n", RuleTypeError, 4, 5, "thrown away"),
    ("with every(10):\n    x = command(valve, open)\n", RuleTypeError, 4, 9, "write it on its own line"),
    ("with every(0):\n    pass\n", RuleTypeError, 3, 6, "at least 1 slot"),
    ("state.t = table(device, device)\nwith every(10):\n    pass\n", RuleTypeError, 3, 25, "a table holds"),
    ("with every(10):\n    state.n = 9223372036854775807 + 1\n", RuleTypeError, 4, 15, "overflow"),
    ("with every(10):\n    x = 0.5\n    for x in range(3):\n        pass\n", RuleTypeError, 5, 9, "holds a fixed"),
]


@pytest.mark.parametrize("body, cls, line, column, fragment", CASES)
def test_error_points_at_line_and_column(body, cls, line, column, fragment):
    with pytest.raises(cls) as info:
        compile_rule(HEAD + body, "field.rule")
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert fragment in err.message
    assert str(err).startswith(f"field.rule:{line}:{column}: ")


def test_error_shows_the_line_with_a_caret_under_the_column():
    with pytest.raises(RuleError) as info:
        compile_rule("state.n = 0\nwith every(5):\n    state.n = n + 1\n", "r.rule")
    lines = str(info.value).splitlines()
    assert lines[1].strip() == "state.n = n + 1"
    assert lines[2].index("^") == lines[1].index("n + 1")


def test_column_counts_characters_not_utf8_bytes():
    source = "état = 1\nwith every(5):\n    température = état + inconnu\n"
    with pytest.raises(RuleTypeError) as info:
        compile_rule(source, "fr.rule")
    assert (info.value.line, info.value.column) == (3, 26)


def test_a_file_without_rules_is_refused():
    with pytest.raises(RuleSyntaxError, match="at least one `with"):
        compile_rule("x = 1\n", "empty.rule")


def test_rule_errors_are_user_facing_chain_errors():
    with pytest.raises(ChainError) as info:
        compile_rule("with every(1):\n    state.x = 1\n", "r.rule")
    assert getattr(info.value, "user_facing", False)
