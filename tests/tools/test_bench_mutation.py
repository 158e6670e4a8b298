"""`blockiot bench mutation` on a tiny project made in tmp_path: a wrong comparison is killed by
the module's test, an equivalent one survives and is named, and the checkout is left as it was."""
from __future__ import annotations

import json
import textwrap

from blockiot.tools.bench_mutation import find_mutants
from blockiot.tools.cli import main

MODULE = '''\
"""Floors: a docstring the mutator leaves alone."""


def floor_at(value, low):
    return low if value < low else value
'''
TEST = '''\
from blockiot.mutdemo.floors import floor_at


def test_floor_at():
    assert floor_at(-5, 0) == 0
    assert floor_at(7, 0) == 7
'''


def make_project(root):
    (root / "pyproject.toml").write_text('[tool.setuptools.package-dir]\n"blockiot.mutdemo" = "mutdemo"\n')
    (root / "mutdemo").mkdir()
    (root / "mutdemo" / "__init__.py").write_text("")
    (root / "mutdemo" / "floors.py").write_text(MODULE)
    (root / "tests").mkdir()
    (root / "tests" / "test_floors.py").write_text(TEST)


def test_a_wrong_comparison_is_killed_and_an_equivalent_one_survives(tmp_path, capsys):
    make_project(tmp_path)
    status = main(["bench", "mutation", "--json", "--root", str(tmp_path), "--module", "mutdemo/floors.py",
                   "--tests", "tests/test_floors.py", "--max-mutants", "0"])
    assert status == 0
    score = json.loads(capsys.readouterr().out)["modules"]["mutdemo/floors.py"]
    # `return None`, `value >= low` and the negated condition fail the test; `value <= low`
    # returns low when value == low, which is the same number.
    assert (score["mutants"], score["run"], score["killed"], score["timeouts"]) == (4, 4, 3, 0)
    assert score["survivors"] == [{"line": 5, "kind": "comparison", "mutation": "`value < low` -> `(value <= low)`"}]
    assert score["score_pct"] == 75.0 and score["error"] is None
    assert (tmp_path / "mutdemo" / "floors.py").read_text() == MODULE


def test_a_module_whose_tests_fail_unmutated_is_not_measured(tmp_path, capsys):
    make_project(tmp_path)
    (tmp_path / "tests" / "test_floors.py").write_text(TEST.replace("== 7", "== 8"))
    status = main(["bench", "mutation", "--root", str(tmp_path), "--module", "mutdemo/floors.py",
                   "--tests", "tests/test_floors.py"])
    assert status == 1
    assert "not measured: its tests do not pass unmutated (failed)" in capsys.readouterr().out


def test_the_command_refuses_what_it_cannot_measure(tmp_path, capsys):
    assert main(["bench", "mutation", "--module", "radio/nowhere.py"]) == 2
    assert "no own tests known for radio/nowhere.py" in capsys.readouterr().err
    assert main(["bench", "mutation", "--module", "a.py", "b.py", "--tests", "t.py"]) == 2
    assert "--tests goes with exactly one --module" in capsys.readouterr().err
    assert main(["bench", "mutation", "--root", str(tmp_path), "--module", "a.py", "--tests", "t.py"]) == 2
    assert "not in" in capsys.readouterr().err


def test_strings_annotations_and_decorators_are_left_alone():
    source = textwrap.dedent('''\
        import functools


        @functools.lru_cache(maxsize=2)
        def label(count: int = 3) -> str:
            """Say how many."""
            return f"{count + 1} items"
        ''').encode()
    mutants = find_mutants(source)
    assert [(m.line, m.kind, m.mutation) for m in mutants] == [
        (5, "constant", "`3` -> `(2)`"), (5, "constant", "`3` -> `(4)`"),
        (7, "return", '`return f"{count + 1} items"` -> `return None`'),
    ]
    assert all(compile(m.apply(source), "mutant", "exec") for m in mutants)
