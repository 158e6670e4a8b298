"""`blockiot bench mutation`: how many deliberately wrong versions of a module its own tests
catch (mutation testing, issue 13). A benchmark of the tests, not a test: not in CI.

Each mutant is one small change made from the module's syntax:

- operators: + and -, * and /, // and *, % and //, ** and *, << and >>, & and |, ^ and &
  swapped (in augmented assignments too), `and` and `or` swapped, a unary minus dropped;
- comparisons: the boundary moved (< and <=, > and >=) or the test negated (== and !=,
  < and >=, > and <=, is / is not, in / not in);
- conditions: an `if`, `elif`, `while`, conditional expression or comprehension filter
  negated; `not x` made `x`;
- constants: an int n made n + 1 and n - 1, a float x made 2x and x / 2 (0.0 made 1.0),
  True and False swapped;
- guards and statements removed: an `if` without `else` whose body ends in return, raise,
  continue or break; an expression statement, assignment, `del` or `raise` made `pass`;
- returns: `return x` made `return None`; `break` and `continue` swapped.

Strings, f-strings, docstrings, annotations and decorators are left alone; mutants that do
not compile or repeat another are discarded.

The checkout (`--root`) is copied once into a temporary directory: the working tree is never
written. The package dirs of its pyproject.toml ([tool.setuptools.package-dir]: chain/ is
blockiot.chain) are linked under a folder put first on `PYTHONPATH`, so the tests import
the copy. Each mutant is written into the copy in turn, and the module's own tests
(`OWN_TESTS`, or `--tests`) run in a fresh `python -m pytest -x`; it is killed when they fail
or outlast 3x their unmutated time + 10 s (a timeout counts as killed), and survives when
they pass. The unmutated copy must pass them first, else the module is not measured.

A sample of `--max-mutants` per module (0: all), drawn with `--seed`, keeps a run modest;
without `--module`, every core module of `OWN_TESTS` is measured. Progress goes to stderr,
one line per mutant; the report (or one JSON object with `--json`) to stdout.

Why not mutmut or cosmic-ray: mutmut 3 names a mutant by the module path it finds on disk
(chain/ledger.py is `chain.ledger`) while the tests import `blockiot.chain.ledger`, so
without moving the packages the tests never reach its mutants; cosmic-ray writes mutants
into the files in place, keeps one session database per module, cannot sample, and has no
statement, guard or return mutations, the kinds issue 13 found surviving (a deleted
rollback or re-raise).
"""
from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from blockiot.tools.bench import add_benchmark, machine
from blockiot.tools.cli import UserError
from blockiot.tools.options import non_negative_int

# Each core module and the tests that are its own (issue 13): a mutant should fail them.
OWN_TESTS: dict[str, tuple[str, ...]] = {
    "radio/dutycycle.py": ("tests/radio/test_dutycycle.py", "tests/radio/test_dutycycle_edges.py"),
    "radio/link.py": ("tests/radio/test_link.py", "tests/radio/test_link_edges.py"),
    "chain/contracts/vm.py": (
        "tests/chain/contracts/test_language.py", "tests/chain/contracts/test_hostile.py",
        "tests/chain/contracts/test_examples.py", "tests/chain/contracts/test_vm_edges.py",
    ),
    "chain/ledger.py": ("tests/chain/test_ledger.py", "tests/chain/test_ledger_rollback.py"),
    "chain/state.py": ("tests/chain/test_state.py", "tests/chain/test_evidence_tx.py"),
    "chain/wire.py": ("tests/chain/test_vectors.py", "tests/chain/test_wire_properties.py",
                      "tests/chain/test_malformed_corpus.py"),
    "chain/consensus/node.py": ("tests/chain/consensus/test_node.py", "tests/chain/consensus/test_hostile_frames.py"),
    "chain/consensus/tree.py": ("tests/chain/consensus/test_tree.py",),
    "chain/runtime/transmit.py": ("tests/chain/runtime/test_transmit.py",),
    "chain/runtime/runtime.py": ("tests/chain/runtime/test_runtime.py",),
}
DEFAULT_MAX_MUTANTS = 40
DEFAULT_SEED = 13
TIMEOUT_FACTOR, TIMEOUT_EXTRA_S = 3.0, 10.0
BASELINE_TIMEOUT_S = 900.0
# Not copied: version control, environments, build output and a node's data (at the top of the
# checkout), and caches (anywhere).
NOT_COPIED_AT_TOP = frozenset({".git", ".venv", "venv", "build", "dist", "data", "mutants"})
CACHES = frozenset({"__pycache__", ".pytest_cache", ".hypothesis"})
SHOWN_CHARS = 70

_BINOPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
    ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.BitXor: ast.BitAnd,
}
_COMPARES = {
    ast.Lt: (ast.LtE, ast.GtE), ast.LtE: (ast.Lt, ast.Gt), ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt), ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,), ast.In: (ast.NotIn,), ast.NotIn: (ast.In,),
}
_EXITS = (ast.Return, ast.Raise, ast.Continue, ast.Break)
_REMOVABLE = (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete, ast.Raise)
_SKIPPED_FIELDS = {"annotation", "returns", "decorator_list"}


@dataclass(frozen=True)
class Mutant:
    """One change: the source bytes `start:end` (on `line`) replaced by `replacement`."""

    line: int
    kind: str
    start: int
    end: int
    replacement: str
    mutation: str  # `before` -> `after`, for people

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]


def find_mutants(source: bytes) -> list[Mutant]:
    """Every distinct mutant of `source` that compiles, in source order."""
    tree = ast.parse(source)
    line_starts = [0]
    for line in source.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))
    found: list[Mutant] = []

    def span(node: ast.AST) -> tuple[int, int]:
        return (line_starts[node.lineno - 1] + node.col_offset,
                line_starts[node.end_lineno - 1] + node.end_col_offset)

    def text(node: ast.AST) -> str:
        start, end = span(node)
        return source[start:end].decode()

    def add(node: ast.AST, kind: str, replacement: str, shown: str | None = None) -> None:
        start, end = span(node)
        found.append(Mutant(node.lineno, kind, start, end, replacement,
                            f"`{_short(text(node))}` -> `{_short(shown or replacement)}`"))

    def replaced(node: ast.expr, **changes) -> str:
        mutated = copy.copy(node)
        for name, value in changes.items():
            setattr(mutated, name, value)
        return f"({ast.unparse(mutated)})"

    def negate(test: ast.expr) -> None:
        if not (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)):  # `not x` -> `x` covers it
            add(test, "condition", f"not ({text(test)})")

    def visit_expression(node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            add(node, "operator", replaced(node, op=_BINOPS[type(node.op)]()))
        elif isinstance(node, ast.BoolOp):
            add(node, "operator", replaced(node, op=ast.Or() if isinstance(node.op, ast.And) else ast.And()))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            add(node, "condition" if isinstance(node.op, ast.Not) else "operator", f"({text(node.operand)})")
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for other in _COMPARES[type(op)]:
                    ops = list(node.ops)
                    ops[i] = other()
                    add(node, "comparison", replaced(node, ops=ops))
        elif isinstance(node, ast.IfExp):
            negate(node.test)
        elif isinstance(node, ast.comprehension):
            for condition in node.ifs:
                negate(condition)
        elif isinstance(node, ast.Constant):
            for value in _constants(node.value):
                add(node, "constant", f"({value!r})")

    def visit_statement(node: ast.stmt, parent: ast.AST | None) -> None:
        is_elif = isinstance(parent, ast.If) and parent.orelse == [node] and text(node).startswith("elif")
        if isinstance(node, (ast.If, ast.While)):
            negate(node.test)
        if isinstance(node, ast.If) and not node.orelse and not is_elif and isinstance(node.body[-1], _EXITS):
            add(node, "guard", "pass", "pass  # guard removed")
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BINOPS:
            mutated = copy.copy(node)
            mutated.op = _BINOPS[type(node.op)]()
            add(node, "operator", ast.unparse(mutated))
        if isinstance(node, _REMOVABLE) and not _is_docstring(node):
            add(node, "statement", "pass")
        elif isinstance(node, ast.Return) and node.value is not None and not _is_none(node.value):
            add(node, "return", "return None")
        elif isinstance(node, (ast.Break, ast.Continue)):
            add(node, "statement", "continue" if isinstance(node, ast.Break) else "break")

    def walk(node: ast.AST, parent: ast.AST | None) -> None:
        if isinstance(node, ast.JoinedStr) or _is_docstring(node):
            return
        if isinstance(node, ast.stmt):
            visit_statement(node, parent)
        else:
            visit_expression(node)
        for name, value in ast.iter_fields(node):
            if name in _SKIPPED_FIELDS:
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    walk(child, node)

    walk(tree, None)
    distinct, seen = [], {hashlib.sha256(source).digest()}
    for mutant in sorted(found, key=lambda m: (m.start, m.end, m.kind, m.replacement)):
        mutated = mutant.apply(source)
        digest = hashlib.sha256(mutated).digest()
        if digest not in seen and _compiles(mutated):
            seen.add(digest)
            distinct.append(mutant)
    return distinct


def _constants(value) -> list:
    """What an int, float or bool constant becomes; strings, bytes and None stay."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 2, value / 2] if value else [1.0]
    return []


def _is_docstring(node: ast.AST) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _is_none(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def _compiles(source: bytes) -> bool:
    try:
        compile(source, "<mutant>", "exec")
    except SyntaxError:
        return False
    return True


def _short(code: str) -> str:
    flat = " ".join(code.split())
    return flat if len(flat) <= SHOWN_CHARS else flat[: SHOWN_CHARS - 3] + "..."


# --- running the tests against mutants ---------------------------------------------------------


@dataclass
class Survivor:
    line: int
    kind: str
    mutation: str


@dataclass
class ModuleScore:
    """One module's result: `run` mutants of `mutants` tried, `killed` of them (with timeouts)."""

    module: str
    tests: tuple[str, ...]
    mutants: int = 0
    run: int = 0
    killed: int = 0
    timeouts: int = 0
    baseline_s: float = 0.0
    timeout_s: float = 0.0
    survivors: list[Survivor] = field(default_factory=list)
    error: str | None = None  # why the module was not measured

    @property
    def score_pct(self) -> float | None:
        return round(100 * self.killed / self.run, 1) if self.run else None


class Workspace:
    """A copy of the checkout in a temporary directory, importable as the project's packages."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.tree = tmp / "tree"
        shutil.copytree(root, self.tree, ignore=lambda folder, names: _not_copied(root, folder, names), symlinks=True)
        self.imports = tmp / "imports"
        for package, folder in _top_packages(root).items():
            link = self.imports.joinpath(*package.split("."))
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(self.tree / folder, target_is_directory=True)
        self._stamp = int(time.time()) + 1

    def write(self, module: str, source: bytes) -> None:
        """Write a module's source with an mtime no earlier write had, so no stale bytecode runs."""
        path = self.tree / module
        path.write_bytes(source)
        self._stamp += 1
        os.utime(path, (self._stamp, self._stamp))

    def run_tests(self, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float, str]:
        """("passed" | "failed" | "timeout", seconds, output) of pytest on `tests` in the copy."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(self.imports), env.get("PYTHONPATH"))))
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=self.tree, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            return "timeout", time.monotonic() - started, output.decode(errors="replace")
        outcome = "passed" if proc.returncode == 0 else "failed"
        return outcome, time.monotonic() - started, output.decode(errors="replace")


def _not_copied(root: Path, folder: str, names: list[str]) -> set[str]:
    at_top = NOT_COPIED_AT_TOP if Path(folder) == root else frozenset()
    return {name for name in names if name in CACHES or name in at_top or name.endswith(".egg-info")}


def _top_packages(root: Path) -> dict[str, str]:
    """The package-dir entries not inside another one: {"blockiot.chain": "chain", ...}."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise UserError(f"{root} holds no pyproject.toml: give --root the project's checkout")
    dirs = tomllib.loads(pyproject.read_text()).get("tool", {}).get("setuptools", {}).get("package-dir", {})
    if not dirs:
        raise UserError(f"{pyproject} has no [tool.setuptools.package-dir] to import the copy by")
    return {name: folder for name, folder in dirs.items()
            if not any(name.startswith(other + ".") for other in dirs)}


def measure_module(work: Workspace, module: str, tests: tuple[str, ...], *, max_mutants: int, seed: int,
                   progress=None) -> ModuleScore:
    """Run a sample of the module's mutants against `tests` in the workspace."""
    score = ModuleScore(module, tests)
    original = (work.tree / module).read_bytes()
    mutants = find_mutants(original)
    score.mutants = len(mutants)
    if max_mutants and len(mutants) > max_mutants:
        chosen = sorted(random.Random(f"{seed}:{module}").sample(range(len(mutants)), max_mutants))
        mutants = [mutants[i] for i in chosen]
    outcome, seconds, output = work.run_tests(tests, BASELINE_TIMEOUT_S)
    score.baseline_s = round(seconds, 1)
    if outcome != "passed":
        tail = "\n".join(output.strip().splitlines()[-15:])
        score.error = f"its tests do not pass unmutated ({outcome}):\n{tail}"
        return score
    score.timeout_s = round(TIMEOUT_FACTOR * seconds + TIMEOUT_EXTRA_S, 1)
    try:
        for n, mutant in enumerate(mutants, 1):
            work.write(module, mutant.apply(original))
            outcome, seconds, _ = work.run_tests(tests, score.timeout_s)
            score.run += 1
            if outcome == "passed":
                score.survivors.append(Survivor(mutant.line, mutant.kind, mutant.mutation))
            else:
                score.killed += 1
                score.timeouts += outcome == "timeout"
            if progress is not None:
                progress(f"{module} [{n}/{len(mutants)}] line {mutant.line} {mutant.kind}: "
                         f"{'survived' if outcome == 'passed' else outcome} ({seconds:.1f} s)")
    finally:
        work.write(module, original)
    return score


def measure(root: Path, targets: dict[str, tuple[str, ...]], *, max_mutants: int, seed: int,
            progress=None) -> list[ModuleScore]:
    """Copy `root` once and score each module of `targets` (module -> its test files)."""
    for module, tests in targets.items():
        missing = [name for name in (module, *tests) if not (root / name).is_file()]
        if missing:
            raise UserError(f"not in {root}: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="blockiot-mutation-") as tmp:
        work = Workspace(root, Path(tmp))
        return [measure_module(work, module, tests, max_mutants=max_mutants, seed=seed, progress=progress)
                for module, tests in targets.items()]


# --- the command -----------------------------------------------------------------------------------


def register(bench_subparsers) -> None:
    parser = add_benchmark(
        bench_subparsers, "mutation", help="mutation score of core modules against their own tests",
        description="Make small wrong versions (mutants) of each module, run its own tests on each in a "
                    "copy of the checkout, and print killed / run per module with the surviving mutations. "
                    "Slow: a test run per mutant. Not part of the test suite.",
        run=run,
    )
    parser.add_argument("--module", action="extend", nargs="+", metavar="PATH", default=[],
                        help=f"module path in the checkout (default: all of {', '.join(OWN_TESTS)})")
    parser.add_argument("--tests", action="extend", nargs="+", metavar="FILE", default=[],
                        help="test files to run instead of the module's own (with one --module)")
    parser.add_argument("--max-mutants", type=non_negative_int, default=DEFAULT_MAX_MUTANTS, metavar="N",
                        help=f"mutants tried per module, a seeded sample; 0: all (default {DEFAULT_MAX_MUTANTS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                        help=f"seed of the sample (default {DEFAULT_SEED})")
    parser.add_argument("--root", type=Path, default=Path("."), metavar="DIR",
                        help="the project checkout to copy (default: the current directory)")


def targets_of(modules: list[str], tests: list[str]) -> dict[str, tuple[str, ...]]:
    """The modules to measure and each one's tests, from the command line."""
    if tests:
        if len(modules) != 1:
            raise UserError("--tests goes with exactly one --module")
        return {modules[0]: tuple(tests)}
    unknown = [module for module in modules if module not in OWN_TESTS]
    if unknown:
        raise UserError(f"no own tests known for {', '.join(unknown)}: name them with --tests, "
                        f"or pick from {', '.join(OWN_TESTS)}")
    return {module: OWN_TESTS[module] for module in modules or OWN_TESTS}


def run(args: argparse.Namespace) -> int:
    targets = targets_of(args.module, args.tests)
    scores = measure(args.root.resolve(), targets, max_mutants=args.max_mutants, seed=args.seed,
                     progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"machine": machine(), "seed": args.seed, "max_mutants": args.max_mutants,
                          "modules": {s.module: {**asdict(s), "score_pct": s.score_pct} for s in scores}}))
    else:
        _print_report(scores, args.seed)
    return 1 if any(score.error for score in scores) else 0


def _print_report(scores: list[ModuleScore], seed: int) -> None:
    print(f"Mutants killed by each module's own tests (a timeout counts as killed; sample seed {seed})")
    for s in scores:
        print(f"\n{s.module}  tests: {' '.join(s.tests)}")
        if s.error:
            print(f"  not measured: {s.error}")
            continue
        print(f"  {s.killed} of {s.run} killed ({s.score_pct} %), {s.timeouts} by timeout; "
              f"{s.run} of {s.mutants} mutants; tests {s.baseline_s} s unmutated, timeout {s.timeout_s} s")
        for survivor in s.survivors:
            print(f"  survived: line {survivor.line:4d} {survivor.kind:10s} {survivor.mutation}")
    print(f"\n{'module':32s} {'killed':>6s} {'run':>5s} {'score':>7s}")
    for s in scores:
        figure = "-" if s.error else f"{s.score_pct} %"
        print(f"{s.module:32s} {s.killed:6d} {s.run:5d} {figure:>7s}")
