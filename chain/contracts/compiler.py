"""Compiler: rule source -> checked, typed, compact Program bytecode.

Rule source is a small subset of Python's syntax, parsed by Python's own `ast` (so the
grammar, comments, indentation and string rules are Python's, well kept and well known) and
then checked node by node: anything outside the subset, and every type mistake, raises a
RuleError at its line and column. See docs/CONTRACTS.md for the language.

The top level holds, in any order of kinds: constants (`dry = 30.0`, `valve = device(3)`,
`field = group("field-a")`), state (`state.opened = 0`, `state.offers = table(device, int)`),
helper functions (`def f(x: fixed) -> bool:`) and rules (`with reading(...) as r:`,
`with transaction(...) as t:`, `with every(N):`).
"""
from __future__ import annotations

import ast
import difflib
import enum
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from blockiot.chain.contracts import arith
from blockiot.chain.contracts.assembler import Emit, Label, assemble
from blockiot.chain.contracts.bytecode import (
    EventField,
    EveryTrigger,
    Function,
    Handler,
    Op,
    Program,
    ReadingTrigger,
    TransactionTrigger,
    Trigger,
    encode_program,
    MAX_LOCALS,
    MAX_TABLE_ENTRIES,
)
from blockiot.chain.contracts.errors import RuleError, RuleSyntaxError, RuleTypeError
from blockiot.chain.contracts.vocabulary import ACTIONS, KINDS, SENSORS
from blockiot.chain.wire import MAX_COMMAND_ARGS


class T(enum.Enum):
    """Types of rule values. Groups are compile-time only; tables live only in state."""

    INT = "int"
    FIXED = "fixed"
    BOOL = "bool"
    DEVICE = "device"
    GROUP = "group"

    def __str__(self) -> str:
        return self.value


NUMBERS = (T.INT, T.FIXED)
STORABLE = (T.INT, T.FIXED, T.BOOL, T.DEVICE)
TYPE_NAMES = {t.value: t for t in STORABLE}


@dataclass(frozen=True)
class TableType:
    key: T
    value: T

    def __str__(self) -> str:
        return f"table({self.key}, {self.value})"


@dataclass(frozen=True)
class Names:
    """Debug names kept off chain: what the disassembler and the dry run print."""

    state: tuple[str, ...]
    state_types: tuple[T | TableType, ...]
    functions: tuple[str, ...]


@dataclass(frozen=True)
class CompiledRule:
    program: Program
    bytecode: bytes
    lines: tuple[tuple[int, int], ...]  # (code offset, source line) per instruction
    names: Names

    def line_at(self, offset: int) -> int | None:
        """The source line of the instruction at or before a code offset."""
        best = None
        for start, line in self.lines:
            if start > offset:
                break
            best = line
        return best


@dataclass
class _Value:
    """Compiled expression: code that leaves one value on the stack, its type, and its value if constant."""

    code: list
    type: T
    const: int | None = None


@dataclass
class _Scope:
    """One function or rule body being compiled."""

    name: str
    locals: dict[str, tuple[int, T]] = field(default_factory=dict)
    n_locals: int = 0
    event: str | None = None           # name bound by `as`
    event_has_value: bool = False      # reading triggers carry a value
    returns: T | None = None
    line: int = 1
    loops: list[tuple[Label, Label]] = field(default_factory=list)  # (continue, break)

    def new_local(self, name: str, type_: T) -> int:
        index = self.n_locals
        self.n_locals += 1
        if name:
            self.locals[name] = (index, type_)
        return index


@dataclass
class _FuncSig:
    index: int
    node: ast.FunctionDef
    params: tuple[tuple[str, T], ...]
    returns: T | None


BUILTIN_NAMES = frozenset(
    {"state", "slot", "device", "group", "table", "latest", "latest_slot", "balance", "min", "max",
     "abs", "int", "len", "range", "command", "transfer", "reading", "transaction", "every",
     "fixed", "bool"}
)
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}
_COMPARE = {ast.Eq: Op.EQ, ast.NotEq: Op.NE, ast.Lt: Op.LT, ast.LtE: Op.LE, ast.Gt: Op.GT, ast.GtE: Op.GE}


def compile_rule(source: str, filename: str = "<rule>") -> CompiledRule:
    """Compile rule source; raises RuleSyntaxError / RuleTypeError pointing at line:column."""
    return _Compiler(source, filename).run()


class _Compiler:
    def __init__(self, source: str, filename: str):
        self.source = source
        self.filename = filename
        self.lines = source.splitlines()
        self.constants: dict[str, tuple[T, int | str]] = {}
        self.state: dict[str, tuple[int, T | TableType]] = {}
        self.state_init: list[int] = []
        self.functions: dict[str, _FuncSig] = {}
        self.function_names: list[str] = []
        self.groups: list[str] = []
        self.handlers: list[tuple[Trigger, int]] = []
        self.items: list = []
        self.entries: list[tuple[Label, _Scope]] = []

    # --- errors -------------------------------------------------------------------------

    def _error(self, node, message: str, cls: type[RuleError] = RuleTypeError) -> RuleError:
        line = getattr(node, "lineno", 1)
        text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        byte_col = getattr(node, "col_offset", 0)
        column = len(text.encode()[:byte_col].decode(errors="ignore")) + 1
        return cls(message, filename=self.filename, line=line, column=column, source_line=text.rstrip())

    def _unsupported(self, node, what: str) -> RuleError:
        return self._error(node, f"{what} is not part of the rule language", RuleSyntaxError)

    # --- top level ----------------------------------------------------------------------

    def run(self) -> CompiledRule:
        try:
            tree = ast.parse(self.source, filename=self.filename)
        except SyntaxError as exc:
            line = exc.lineno or 1
            text = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
            raise RuleSyntaxError(
                exc.msg, filename=self.filename, line=line, column=max(exc.offset or 1, 1),
                source_line=text.rstrip(),
            ) from None
        body = tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]  # the rule's description
        rules: list[ast.With] = []
        for node in body:
            if isinstance(node, ast.Assign):
                self._declare(node)
            elif isinstance(node, ast.FunctionDef):
                self._declare_function(node)
            elif isinstance(node, ast.With):
                rules.append(node)
            else:
                raise self._error(
                    node, "the top level holds constants, `state.NAME = ...`, `def` helpers and `with` rules",
                    RuleSyntaxError,
                )
        if not rules:
            raise RuleSyntaxError("a rule file needs at least one `with ...:` rule", filename=self.filename,
                                  line=1, column=1, source_line=self.lines[0] if self.lines else "")
        for sig in self.functions.values():
            self._compile_function(sig)
        for node in rules:
            self._compile_rule(node)
        return self._link()

    def _link(self) -> CompiledRule:
        for name, table in (("groups", self.groups), ("state values", self.state_init),
                            ("functions and rules", self.entries)):
            if len(table) > MAX_TABLE_ENTRIES:
                raise RuleSyntaxError(f"too many {name} (limit {MAX_TABLE_ENTRIES})", filename=self.filename,
                                      line=1, column=1)
        asm = assemble(self.items)
        functions = []
        for (label, scope), node_name in zip(self.entries, self.function_names):
            if scope.n_locals > MAX_LOCALS:
                raise RuleSyntaxError(f"`{node_name}` uses more than {MAX_LOCALS} local values",
                                      filename=self.filename, line=scope.line, column=1,
                                      source_line=self.lines[scope.line - 1])
            params = len(self.functions[node_name].params) if node_name in self.functions else 0
            functions.append(Function(asm.labels[label], params, scope.n_locals))
        program = Program(
            groups=tuple(self.groups),
            state_init=tuple(self.state_init),
            functions=tuple(functions),
            handlers=tuple(Handler(t, f) for t, f in self.handlers),
            code=asm.code,
        )
        names = Names(tuple(self.state), tuple(t for _, t in self.state.values()), tuple(self.function_names))
        return CompiledRule(program, encode_program(program), asm.lines, names)

    def _check_new_name(self, node, name: str) -> None:
        if name in BUILTIN_NAMES:
            raise self._error(node, f"`{name}` is a built-in name of the rule language; choose another")
        if name in self.constants or name in self.functions:
            raise self._error(node, f"`{name}` is already defined")

    def _declare(self, node: ast.Assign) -> None:
        if len(node.targets) != 1:
            raise self._unsupported(node, "assigning several names at once")
        target = node.targets[0]
        if isinstance(target, ast.Name):
            self._check_new_name(target, target.id)
            self.constants[target.id] = self._constant(node.value)
        elif _is_state(target):
            name = target.attr
            if name in self.state:
                raise self._error(target, f"state.{name} is already declared")
            if isinstance(node.value, ast.Call) and _callee(node.value) == "table":
                self.state[name] = (len(self.state_init), self._table_type(node.value))
                self.state_init.append(0)
            else:
                type_, value = self._constant(node.value)
                if type_ not in STORABLE:
                    raise self._error(node.value, f"state cannot hold {_a(type_)}")
                self.state[name] = (len(self.state_init), type_)
                self.state_init.append(value)
        else:
            raise self._error(target, "at the top level, assign a constant (`name = ...`) or state (`state.name = ...`)",
                              RuleSyntaxError)

    def _constant(self, node) -> tuple[T, int | str]:
        value = self._expr(node, _Scope("<constant>"))
        if value.type is T.GROUP:
            return T.GROUP, self._group_name(node)
        if value.const is None:
            raise self._error(node, "a constant's value must be known when the rule is written "
                                    "(numbers, True/False, device(N), group(\"name\"))")
        return value.type, value.const

    def _table_type(self, call: ast.Call) -> TableType:
        if len(call.args) != 2 or call.keywords:
            raise self._error(call, "write table(KEY, VALUE), e.g. table(device, fixed)")
        key, value = (self._type_name(a) for a in call.args)
        if key not in (T.DEVICE, T.INT):
            raise self._error(call.args[0], "a table's key is a device or an int")
        if value not in (T.INT, T.FIXED, T.BOOL):
            raise self._error(call.args[1], "a table holds ints, fixed-point numbers or bools")
        return TableType(key, value)

    def _type_name(self, node) -> T:
        if isinstance(node, ast.Name) and node.id in TYPE_NAMES:
            return TYPE_NAMES[node.id]
        raise self._error(node, f"expected a type: {', '.join(TYPE_NAMES)}")

    def _declare_function(self, node: ast.FunctionDef) -> None:
        self._check_new_name(node, node.name)
        a = node.args
        if node.decorator_list or a.vararg or a.kwarg or a.kwonlyargs or a.defaults or a.posonlyargs:
            raise self._unsupported(node, "decorators, default values and */** parameters")
        params = []
        for arg in a.args:
            if arg.annotation is None:
                raise self._error(arg, f"say what kind of value `{arg.arg}` is, e.g. `{arg.arg}: fixed`")
            self._check_new_name(arg, arg.arg)
            params.append((arg.arg, self._type_name(arg.annotation)))
        returns = None if node.returns is None else self._type_name(node.returns)
        if returns is not None and not _always_returns(node.body):
            raise self._error(node, f"`{node.name}` can reach its end without returning {_a(returns)}")
        self.functions[node.name] = _FuncSig(len(self.functions), node, tuple(params), returns)

    # --- bodies -------------------------------------------------------------------------

    def _begin(self, name: str, scope: _Scope) -> None:
        label = Label(name)
        self.entries.append((label, scope))
        self.function_names.append(name)
        self.items.append(label)

    def _compile_function(self, sig: _FuncSig) -> None:
        scope = _Scope(sig.node.name, returns=sig.returns, line=sig.node.lineno)
        for name, type_ in sig.params:
            scope.new_local(name, type_)
        self._begin(sig.node.name, scope)
        code = self._block(sig.node.body, scope)
        if sig.returns is None:
            code.append(Emit(Op.RET, (), _last_line(sig.node)))
        self.items.extend(code)

    def _compile_rule(self, node: ast.With) -> None:
        if len(node.items) != 1:
            raise self._unsupported(node, "several triggers in one `with`")
        item = node.items[0]
        trigger, has_value = self._trigger(item.context_expr)
        scope = _Scope(f"rule@{node.lineno}", line=node.lineno)
        if item.optional_vars is not None:
            if isinstance(trigger, EveryTrigger):
                raise self._error(item.optional_vars, "a schedule has no transaction to name; drop `as ...`")
            if not isinstance(item.optional_vars, ast.Name):
                raise self._error(item.optional_vars, "name the triggering transaction with one word")
            self._check_new_name(item.optional_vars, item.optional_vars.id)
            scope.event, scope.event_has_value = item.optional_vars.id, has_value
        self.handlers.append((trigger, len(self.entries)))
        self._begin(scope.name, scope)
        code = self._block(node.body, scope)
        code.append(Emit(Op.RET, (), _last_line(node)))
        self.items.extend(code)

    def _trigger(self, node) -> tuple[Trigger, bool]:
        what = _callee(node)
        if what not in ("reading", "transaction", "every"):
            raise self._error(node, "a rule starts with `with reading(...)`, `with transaction(...)` or `with every(...)`",
                              RuleSyntaxError)
        kwargs = {k.arg: k.value for k in node.keywords}
        if what == "every":
            if len(node.args) != 1 or set(kwargs) - {"offset"}:
                raise self._error(node, "write every(SLOTS) or every(SLOTS, offset=K)")
            period = self._const_int(node.args[0], "the period")
            offset = self._const_int(kwargs["offset"], "the offset") if "offset" in kwargs else 0
            if period < 1 or not 0 <= offset < period:
                raise self._error(node, "the period must be at least 1 slot and the offset in 0..period-1")
            return EveryTrigger(period, offset), False
        if len(node.args) != 1 or set(kwargs) - {"device", "group"} or len(kwargs) > 1:
            raise self._error(node, f"write {what}(NAME), {what}(NAME, device=D) or {what}(NAME, group=G)")
        table = SENSORS if what == "reading" else KINDS
        code = self._word(node.args[0], table, "sensor" if what == "reading" else "transaction kind")
        device = group = None
        if "device" in kwargs:
            value = self._expr(kwargs["device"], _Scope("<trigger>"))
            if value.type is not T.DEVICE or value.const is None:
                raise self._error(kwargs["device"], "device= takes a device, e.g. device(12) or a constant")
            device = value.const
        elif "group" in kwargs:
            group = self._group_index(kwargs["group"], text_allowed=True)  # group="field-a" reads well
        cls = ReadingTrigger if what == "reading" else TransactionTrigger
        return cls(code, device, group), what == "reading"

    def _word(self, node, table, what: str) -> int:
        if isinstance(node, ast.Name) and node.id in table:
            return table[node.id]
        hint = ""
        if isinstance(node, ast.Name):
            close = difflib.get_close_matches(node.id, list(table), n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise self._error(node, f"expected a {what}: {', '.join(table)}{hint}")

    def _const_int(self, node, what: str) -> int:
        value = self._expr(node, _Scope("<constant>"))
        if value.type is not T.INT or value.const is None:
            raise self._error(node, f"{what} must be a whole number known when the rule is written")
        return value.const

    def _group_name(self, node, text_allowed: bool = False) -> str:
        if text_allowed and isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id in self.constants and self.constants[node.id][0] is T.GROUP:
            return self.constants[node.id][1]
        if _callee(node) == "group" and len(node.args) == 1 and not node.keywords \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            return node.args[0].value
        raise self._error(node, 'expected a group: group("name") or a constant holding one')

    def _group_index(self, node, text_allowed: bool = False) -> int:
        name = self._group_name(node, text_allowed)
        if name not in self.groups:
            self.groups.append(name)
        return self.groups.index(name)

    # --- statements ---------------------------------------------------------------------

    def _block(self, body: list, scope: _Scope) -> list:
        code: list = []
        for stmt in body:
            code.extend(self._stmt(stmt, scope))
        return code

    def _stmt(self, node, scope: _Scope) -> list:
        line = node.lineno
        if isinstance(node, ast.Pass):
            return []
        if isinstance(node, ast.Assign):
            if len(node.targets) != 1:
                raise self._unsupported(node, "assigning several names at once")
            return self._assign(node.targets[0], node.value, scope)
        if isinstance(node, ast.AugAssign):
            return self._aug_assign(node, scope)
        if isinstance(node, ast.If):
            return self._if(node, scope)
        if isinstance(node, ast.While):
            if node.orelse:
                raise self._unsupported(node, "`else` after a loop")
            top, end = Label("while"), Label("end")
            cond = self._branch(node.test, end, scope, False)
            scope.loops.append((top, end))
            body = self._block(node.body, scope)
            scope.loops.pop()
            return [top, *cond, *body, Emit(Op.JMP, (top,), line), end]
        if isinstance(node, ast.For):
            return self._for(node, scope)
        if isinstance(node, (ast.Break, ast.Continue)):
            if not scope.loops:
                raise self._error(node, f"`{'break' if isinstance(node, ast.Break) else 'continue'}` outside a loop")
            cont, brk = scope.loops[-1]
            return [Emit(Op.JMP, (brk if isinstance(node, ast.Break) else cont,), line)]
        if isinstance(node, ast.Return):
            return self._return(node, scope)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            return self._call_stmt(node.value, scope)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return []  # a description, like a comment
        if isinstance(node, ast.Expr):
            raise self._error(node, "this value is computed and then thrown away; assign it or use it in an `if`")
        raise self._unsupported(node, f"`{type(node).__name__.lower()}` statement")

    def _if(self, node: ast.If, scope: _Scope) -> list:
        line = node.lineno
        else_, end = Label("else"), Label("endif")
        code = [*self._branch(node.test, else_, scope, False), *self._block(node.body, scope)]
        if node.orelse:
            code += [Emit(Op.JMP, (end,), line), else_, *self._block(node.orelse, scope), end]
        else:
            code.append(else_)
        return code

    def _for(self, node: ast.For, scope: _Scope) -> list:
        line = node.lineno
        if node.orelse:
            raise self._unsupported(node, "`else` after a loop")
        if not isinstance(node.target, ast.Name):
            raise self._error(node.target, "loop over one name, e.g. `for probe in field:`")
        it = node.iter
        counter = scope.new_local("", T.INT)
        top, cont, end = Label("for"), Label("next"), Label("endfor")
        if _callee(it) != "range":  # a group: FORGROUP fetches the next member and counts
            group = self._group_index(it)
            var = self._local_for_write(node.target, node.target.id, T.DEVICE, scope)
            scope.loops.append((top, end))
            body = self._block(node.body, scope)
            scope.loops.pop()
            return [Emit(Op.PUSH, (0,), line), Emit(Op.STORE, (counter,), line), top,
                    Emit(Op.FORGROUP, (end, group, counter), line), Emit(Op.STORE, (var,), line),
                    *body, Emit(Op.JMP, (top,), line), end]
        if it.keywords or not 1 <= len(it.args) <= 2:
            raise self._error(it, "write range(END) or range(START, END)")
        bounds = [self._expr(a, scope) for a in it.args]
        for a, b in zip(it.args, bounds):
            self._expect(a, b, (T.INT,), "range bounds")
        limit = scope.new_local("", T.INT)
        start = bounds[0].code if len(bounds) == 2 else [Emit(Op.PUSH, (0,), line)]
        var = self._local_for_write(node.target, node.target.id, T.INT, scope)
        if scope.locals[node.target.id][1] is not T.INT:
            raise self._error(node.target, f"`{node.target.id}` holds a fixed; count with another name")
        scope.loops.append((cont, end))
        body = self._block(node.body, scope)
        scope.loops.pop()
        return [
            *start, Emit(Op.STORE, (counter,), line), *bounds[-1].code, Emit(Op.STORE, (limit,), line), top,
            Emit(Op.LOAD, (counter,), line), Emit(Op.LOAD, (limit,), line), Emit(Op.LT, (), line),
            Emit(Op.JZ, (end,), line), Emit(Op.LOAD, (counter,), line), Emit(Op.STORE, (var,), line),
            *body,
            cont, Emit(Op.LOAD, (counter,), line), Emit(Op.PUSH, (1,), line), Emit(Op.ADD, (), line),
            Emit(Op.STORE, (counter,), line), Emit(Op.JMP, (top,), line), end,
        ]

    def _return(self, node: ast.Return, scope: _Scope) -> list:
        line = node.lineno
        if scope.returns is None:
            if node.value is not None:
                raise self._error(node, "this rule or helper does not return a value (add `-> TYPE` to the def)")
            return [Emit(Op.RET, (), line)]
        if node.value is None:
            raise self._error(node, f"`{scope.name}` must return {_a(scope.returns)}")
        value = self._coerce(node.value, self._expr(node.value, scope), scope.returns, "the returned value")
        return [*value, Emit(Op.RETV, (), line)]

    def _local_for_write(self, node, name: str, type_: T, scope: _Scope) -> int:
        if name in scope.locals:
            index, existing = scope.locals[name]
            if existing is not type_ and not (existing is T.FIXED and type_ is T.INT):
                raise self._error(node, f"`{name}` holds {_a(existing)}; it cannot also hold {_a(type_)}")
            return index
        self._check_new_name(node, name)
        if name == scope.event:
            raise self._error(node, f"`{name}` names the triggering transaction; choose another name")
        return scope.new_local(name, type_)

    def _assign(self, target, value_node, scope: _Scope) -> list:
        if isinstance(target, ast.Subscript):  # the key is computed before the value
            index, table, key = self._table_key(target, scope)
            value = self._expr(value_node, scope)
            return [*key, *self._coerce(value_node, value, table.value, "a table entry"),
                    Emit(Op.TSTORE, (index,), target.lineno)]
        return self._store(target, value_node, self._expr(value_node, scope), scope)

    def _store(self, target, node, value: _Value, scope: _Scope) -> list:
        """Store a compiled value into a local name or a state scalar."""
        line = target.lineno
        if isinstance(target, ast.Name):
            if value.type not in STORABLE:
                raise self._error(node, f"{_a(value.type).capitalize()} cannot be stored; use it directly")
            index = self._local_for_write(target, target.id, value.type, scope)
            want = scope.locals[target.id][1]
            return [*self._coerce(node, value, want, f"`{target.id}`"), Emit(Op.STORE, (index,), line)]
        if _is_state(target):
            index, type_ = self._state_slot(target)
            if isinstance(type_, TableType):
                raise self._error(target, f"state.{target.attr} is a table: write state.{target.attr}[key] = ...")
            return [*self._coerce(node, value, type_, f"state.{target.attr}"), Emit(Op.SSTORE, (index,), line)]
        raise self._error(target, "assign to a name, `state.NAME` or `state.TABLE[key]`", RuleSyntaxError)

    def _aug_assign(self, node: ast.AugAssign, scope: _Scope) -> list:
        line = node.lineno
        op = type(node.op)
        if op not in _BINOPS:
            raise self._unsupported(node, f"`{type(node.op).__name__}=`")
        target = node.target
        if isinstance(target, ast.Subscript):  # evaluate the key once
            index, table, key = self._table_key(target, scope)
            temp = scope.new_local("", T.INT)
            current = _Value([Emit(Op.LOAD, (temp,), line), Emit(Op.TLOAD, (index,), line)], table.value)
            result = self._binop(node, op, current, self._expr(node.value, scope))
            return [*key, Emit(Op.STORE, (temp,), line), Emit(Op.LOAD, (temp,), line),
                    *self._coerce(node, result, table.value, "a table entry"), Emit(Op.TSTORE, (index,), line)]
        if not (isinstance(target, ast.Name) or _is_state(target)):
            raise self._error(target, "assign to a name, `state.NAME` or `state.TABLE[key]`", RuleSyntaxError)
        read = ast.copy_location(
            ast.Name(target.id, ast.Load()) if isinstance(target, ast.Name)
            else ast.Attribute(target.value, target.attr, ast.Load()),
            target,
        )
        result = self._binop(node, op, self._expr(read, scope), self._expr(node.value, scope))
        return self._store(target, node, result, scope)

    def _call_stmt(self, node: ast.Call, scope: _Scope) -> list:
        line = node.lineno
        name = _callee(node)
        if name == "command":
            if node.keywords or len(node.args) < 2:
                raise self._error(node, "write command(DEVICE, ACTION, arguments...), e.g. command(valve, open, 600)")
            target = self._expr(node.args[0], scope)
            self._expect(node.args[0], target, (T.DEVICE,), "a command's target")
            action = self._word(node.args[1], ACTIONS, "command action")
            args = node.args[2:]
            if len(args) > MAX_COMMAND_ARGS:
                raise self._error(node, f"a command takes at most {MAX_COMMAND_ARGS} arguments")
            code = list(target.code)
            for a in args:
                value = self._expr(a, scope)
                self._expect(a, value, (T.INT,), "a command argument (whole numbers; use int(x))")
                code += value.code
            return [*code, Emit(Op.COMMAND, (action, len(args)), line)]
        if name == "transfer":
            if node.keywords or len(node.args) != 3:
                raise self._error(node, "write transfer(FROM_DEVICE, TO_DEVICE, AMOUNT)")
            values = [self._expr(a, scope) for a in node.args]
            for a, v, want, what in zip(node.args, values, (T.DEVICE, T.DEVICE, T.INT),
                                        ("the payer", "the payee", "the amount (a whole number of units)")):
                self._expect(a, v, (want,), what)
            return [*values[0].code, *values[1].code, *values[2].code, Emit(Op.TRANSFER, (), line)]
        if name in self.functions:
            code, returns = self._call_function(node, scope)
            return code + ([Emit(Op.POP, (), line)] if returns else [])
        raise self._error(node, "only command(...), transfer(...) and your own helpers can stand alone on a line")

    # --- expressions ----------------------------------------------------------------------

    def _branch(self, node, target: Label, scope: _Scope, jump_when: bool) -> list:
        """Code that jumps to `target` when the condition is `jump_when` and falls through otherwise.

        `and`, `or` and `not` become jumps, stopping at the first operand that decides."""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return self._branch(node.operand, target, scope, not jump_when)
        if isinstance(node, ast.BoolOp):
            decided_by = isinstance(node.op, ast.Or)  # `or` is decided by a true operand, `and` by a false one
            if decided_by == jump_when:
                return [c for v in node.values for c in self._branch(v, target, scope, jump_when)]
            past = Label("decided")
            code = [c for v in node.values[:-1] for c in self._branch(v, past, scope, decided_by)]
            return [*code, *self._branch(node.values[-1], target, scope, jump_when), past]
        invert = [Emit(Op.NOT, (), node.lineno)] if jump_when else []
        return [*self._condition(node, scope), *invert, Emit(Op.JZ, (target,), node.lineno)]

    def _condition(self, node, scope: _Scope) -> list:
        value = self._expr(node, scope)
        if value.type is not T.BOOL:
            raise self._error(node, f"a condition must be true or false, not {_a(value.type)}; compare it, e.g. `x > 0`")
        return value.code

    def _expect(self, node, value: _Value, types: tuple[T, ...], what: str) -> None:
        if value.type not in types:
            raise self._error(node, f"{what} must be {' or '.join(map(str, types))}, not {value.type}")

    def _coerce(self, node, value: _Value, want: T, what: str) -> list:
        """Code leaving `value` as type `want`; an int widens to fixed, nothing else converts silently."""
        if value.type is want:
            return value.code
        if value.type is T.INT and want is T.FIXED:
            return self._to_fixed(node, value).code
        raise self._error(node, f"{what} is {_a(want)}, not {_a(value.type)}")

    def _to_fixed(self, node, value: _Value) -> _Value:
        if value.const is not None:
            return _Value([Emit(Op.PUSH, (self._fold(node, arith.to_fixed, value.const),), node.lineno)], T.FIXED,
                          arith.to_fixed(value.const))
        return _Value([*value.code, Emit(Op.PUSH, (arith.FIXED_SCALE,), node.lineno), Emit(Op.MUL, (), node.lineno)],
                      T.FIXED)

    def _fold(self, node, fn, *args) -> int:
        try:
            return fn(*args)
        except arith.ArithmeticFault as exc:
            raise self._error(node, str(exc)) from None

    def _const(self, node, type_: T, value: int) -> _Value:
        return _Value([Emit(Op.PUSH, (value,), node.lineno)], type_, value)

    def _expr(self, node, scope: _Scope) -> _Value:
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Constant):
            return self._literal(node)
        if isinstance(node, ast.Name):
            return self._name(node, scope)
        if isinstance(node, ast.Attribute):
            if _is_state(node):
                index, type_ = self._state_slot(node)
                if isinstance(type_, TableType):
                    raise self._error(node, f"state.{node.attr} is a table: read one entry, state.{node.attr}[key]")
                return _Value([Emit(Op.SLOAD, (index,), line)], type_)
            if isinstance(node.value, ast.Name) and node.value.id == scope.event and scope.event:
                if node.attr == "device":
                    return _Value([Emit(Op.EVENT, (EventField.DEVICE,), line)], T.DEVICE)
                if node.attr == "value" and scope.event_has_value:
                    return _Value([Emit(Op.EVENT, (EventField.VALUE,), line)], T.FIXED)
                fields = "`.value` or `.device`" if scope.event_has_value else "`.device`"
                raise self._error(node, f"the triggering transaction has {fields}, not `.{node.attr}`")
            raise self._unsupported(node, "this `.attribute`")
        if isinstance(node, ast.Subscript):
            index, table, key = self._table_key(node, scope)
            return _Value([*key, Emit(Op.TLOAD, (index,), line)], table.value)
        if isinstance(node, ast.BinOp):
            op = type(node.op)
            if op not in _BINOPS:
                raise self._unsupported(node, f"operator {type(node.op).__name__}")
            return self._binop(node, op, self._expr(node.left, scope), self._expr(node.right, scope))
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, scope)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node, scope)
        if isinstance(node, ast.Compare):
            return self._compare(node, scope)
        if isinstance(node, ast.IfExp):
            cond = self._condition(node.test, scope)
            a, b = self._expr(node.body, scope), self._expr(node.orelse, scope)
            type_ = self._common(node, a, b)
            other, end = Label("else"), Label("end")
            return _Value([*cond, Emit(Op.JZ, (other,), line), *self._coerce(node.body, a, type_, "this value"),
                           Emit(Op.JMP, (end,), line), other, *self._coerce(node.orelse, b, type_, "this value"), end],
                          type_)
        if isinstance(node, ast.Call):
            return self._call(node, scope)
        raise self._unsupported(node, f"`{type(node).__name__}` expression")

    def _literal(self, node: ast.Constant) -> _Value:
        v = node.value
        if isinstance(v, bool):
            return self._const(node, T.BOOL, int(v))
        if isinstance(v, int):
            return self._const(node, T.INT, self._fold(node, arith.checked, v))
        if isinstance(v, float):
            text = ast.get_source_segment(self.source, node) or repr(v)
            try:
                exact = Decimal(text.replace("_", ""))
            except InvalidOperation:
                raise self._error(node, f"cannot read the number {text}") from None
            scaled = exact * arith.FIXED_SCALE
            if scaled != scaled.to_integral_value():
                raise self._error(node, f"{text} has more than {arith.FIXED_DECIMALS} decimal places")
            return self._const(node, T.FIXED, self._fold(node, arith.checked, int(scaled)))
        if isinstance(v, str):
            raise self._error(node, 'text is only used to name groups: group("field-a")')
        raise self._unsupported(node, f"the value {v!r}")

    def _name(self, node: ast.Name, scope: _Scope) -> _Value:
        name, line = node.id, node.lineno
        if name in scope.locals:
            index, type_ = scope.locals[name]
            return _Value([Emit(Op.LOAD, (index,), line)], type_)
        if name in self.constants:
            type_, value = self.constants[name]
            if type_ is T.GROUP:
                return _Value([], T.GROUP)
            return self._const(node, type_, value)
        if name == "slot":
            return _Value([Emit(Op.SLOT, (), line)], T.INT)
        if name == scope.event and scope.event:
            raise self._error(node, f"use `{name}.value` or `{name}.device`")
        if name in SENSORS or name in ACTIONS or name in KINDS:
            raise self._error(node, f"`{name}` only names a sensor, action or kind where one is expected")
        known = list(scope.locals) + list(self.constants) + ["slot"]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        if name in self.functions or name in BUILTIN_NAMES:
            raise self._error(node, f"`{name}` must be called: {name}(...)")
        raise self._error(node, f"unknown name `{name}`{hint}")

    def _state_slot(self, node: ast.Attribute) -> tuple[int, T | TableType]:
        if node.attr not in self.state:
            close = difflib.get_close_matches(node.attr, list(self.state), n=1)
            hint = f" (did you mean `state.{close[0]}`?)" if close else ""
            raise self._error(node, f"state.{node.attr} is not declared; add `state.{node.attr} = ...` at the top{hint}")
        return self.state[node.attr]

    def _table_key(self, node: ast.Subscript, scope: _Scope) -> tuple[int, TableType, list]:
        if not _is_state(node.value):
            raise self._error(node, "only state tables can be indexed: state.TABLE[key]")
        index, type_ = self._state_slot(node.value)
        if not isinstance(type_, TableType):
            raise self._error(node, f"state.{node.value.attr} holds one {type_}, it is not a table")
        key = self._expr(node.slice, scope)
        self._expect(node.slice, key, (type_.key,), f"the key of state.{node.value.attr}")
        return index, type_, key.code

    def _common(self, node, a: _Value, b: _Value) -> T:
        if a.type is b.type:
            return a.type
        if {a.type, b.type} == {T.INT, T.FIXED}:
            return T.FIXED
        raise self._error(node, f"cannot combine {_a(a.type)} with {_a(b.type)}")

    def _binop(self, node, op: type, a: _Value, b: _Value) -> _Value:
        line, symbol = node.lineno, _BINOPS[op]
        for v in (a, b):
            if v.type not in NUMBERS:
                raise self._error(node, f"`{symbol}` works on numbers, not on {_a(v.type)}")
        if op is ast.Div:  # / always gives a fixed-point result
            type_ = T.FIXED
        else:
            type_ = self._common(node, a, b)
        if op is ast.FloorDiv and type_ is not T.INT:
            raise self._error(node, "`//` divides whole numbers; for fixed-point use `/` (and int(...) to drop decimals)")
        if type_ is T.FIXED:
            a, b = (self._to_fixed(node, v) if v.type is T.INT else v for v in (a, b))
        opcode, fn = {
            ast.Add: (Op.ADD, lambda x, y: arith.checked(x + y)),
            ast.Sub: (Op.SUB, lambda x, y: arith.checked(x - y)),
            ast.Mult: (Op.FMUL, arith.fmul) if type_ is T.FIXED else (Op.MUL, lambda x, y: arith.checked(x * y)),
            ast.Div: (Op.FDIV, arith.fdiv),
            ast.FloorDiv: (Op.DIV, arith.div),
            ast.Mod: (Op.MOD, arith.mod),
        }[op]
        if a.const is not None and b.const is not None:
            return self._const(node, type_, self._fold(node, fn, a.const, b.const))
        return _Value([*a.code, *b.code, Emit(opcode, (), line)], type_)

    def _unary(self, node: ast.UnaryOp, scope: _Scope) -> _Value:
        operand = node.operand
        if isinstance(node.op, ast.USub) and isinstance(operand, ast.Constant) and type(operand.value) is int:
            return self._const(node, T.INT, self._fold(node, arith.checked, -operand.value))  # -2**63 fits
        value = self._expr(operand, scope)
        if isinstance(node.op, ast.Not):
            self._expect(node.operand, value, (T.BOOL,), "`not` needs true/false; it")
            if value.const is not None:
                return self._const(node, T.BOOL, int(not value.const))
            return _Value([*value.code, Emit(Op.NOT, (), node.lineno)], T.BOOL)
        self._expect(node.operand, value, NUMBERS, "a signed value")
        if isinstance(node.op, ast.UAdd):
            return value
        if isinstance(node.op, ast.USub):
            if value.const is not None:
                return self._const(node, value.type, self._fold(node, arith.checked, -value.const))
            return _Value([*value.code, Emit(Op.NEG, (), node.lineno)], value.type)
        raise self._unsupported(node, "operator ~")

    def _boolop(self, node: ast.BoolOp, scope: _Scope) -> _Value:
        """`and` / `or` as a value: the branches of _branch, then 1 or 0."""
        line = node.lineno
        false, end = Label("false"), Label("end")
        return _Value([*self._branch(node, false, scope, False), Emit(Op.PUSH, (1,), line), Emit(Op.JMP, (end,), line),
                       false, Emit(Op.PUSH, (0,), line), end], T.BOOL)

    def _compare(self, node: ast.Compare, scope: _Scope) -> _Value:
        """`a < b < c` compares pairwise and evaluates b once, as Python does."""
        line = node.lineno
        left = self._expr(node.left, scope)
        operands = [self._expr(c, scope) for c in node.comparators]
        if len(operands) == 1:
            return self._compare_pair(node, node.ops[0], left, operands[0], node.comparators[0])
        fail, end = Label("false"), Label("end")
        code: list = []
        for i, (op, right, right_node) in enumerate(zip(node.ops, operands, node.comparators)):
            if i < len(operands) - 1:
                temp = scope.new_local("", right.type)
                right_code = [*right.code, Emit(Op.STORE, (temp,), line), Emit(Op.LOAD, (temp,), line)]
                pair = self._compare_pair(node, op, left, _Value(right_code, right.type), right_node)
                code += [*pair.code, Emit(Op.JZ, (fail,), line)]
                left = _Value([Emit(Op.LOAD, (temp,), line)], right.type)
            else:
                code += self._compare_pair(node, op, left, right, right_node).code
        return _Value([*code, Emit(Op.JMP, (end,), line), fail, Emit(Op.PUSH, (0,), line), end], T.BOOL)

    def _compare_pair(self, node, op, a: _Value, b: _Value, b_node) -> _Value:
        line = node.lineno
        if isinstance(op, (ast.In, ast.NotIn)):
            self._expect(node, a, (T.DEVICE,), "the left side of `in`")
            group = self._group_index(b_node)
            code = [*a.code, Emit(Op.INGROUP, (group,), line)]
            if isinstance(op, ast.NotIn):
                code.append(Emit(Op.NOT, (), line))
            return _Value(code, T.BOOL)
        if type(op) not in _COMPARE:
            raise self._unsupported(node, "`is` / `is not` (use == and !=)")
        opcode = _COMPARE[type(op)]
        type_ = self._common(node, a, b)
        if type_ in (T.BOOL, T.DEVICE) and opcode not in (Op.EQ, Op.NE):
            raise self._error(node, f"{_a(type_).capitalize()} can only be compared with == and !=")
        if type_ is T.GROUP:
            raise self._error(node, "groups are compared by membership: `device in group`")
        if type_ is T.FIXED:
            a, b = (self._to_fixed(node, v) if v.type is T.INT else v for v in (a, b))
        return _Value([*a.code, *b.code, Emit(opcode, (), line)], T.BOOL)

    def _call(self, node: ast.Call, scope: _Scope) -> _Value:
        line = node.lineno
        name = _callee(node)
        if name is None:
            raise self._unsupported(node, "calling this")
        if name in self.functions:
            code, returns = self._call_function(node, scope)
            if returns is None:
                raise self._error(node, f"`{name}` gives no value; call it on its own line")
            return _Value(code, returns)
        if name in ("command", "transfer"):
            raise self._error(node, f"{name}(...) is an action: write it on its own line")
        if name in ("reading", "transaction", "every"):
            raise self._error(node, f"{name}(...) starts a rule: `with {name}(...):` at the top level")
        if name in ("table", "range"):
            raise self._error(node, f"{name}(...) is not allowed here")
        kwargs = {k.arg: k.value for k in node.keywords}
        args = node.args
        if name == "device":
            if len(args) != 1 or kwargs:
                raise self._error(node, "write device(N) with the device's number in the cluster")
            n = self._const_int(args[0], "a device number")
            if n < 0:
                raise self._error(node, "device numbers start at 0")
            return self._const(node, T.DEVICE, n)
        if name == "group":
            self._group_name(node)
            return _Value([], T.GROUP)
        if name == "latest":
            if len(args) != 2 or set(kwargs) - {"default"}:
                raise self._error(node, "write latest(DEVICE, SENSOR) or latest(DEVICE, SENSOR, default=VALUE)")
            device = self._expr(args[0], scope)
            self._expect(args[0], device, (T.DEVICE,), "the device")
            sensor = self._word(args[1], SENSORS, "sensor")
            default = self._expr(kwargs["default"], scope) if "default" in kwargs else self._const(node, T.FIXED, 0)
            default_code = self._coerce(kwargs.get("default", node), default, T.FIXED, "the default")
            return _Value([*device.code, Emit(Op.PUSH, (sensor,), line), *default_code, Emit(Op.LATEST, (), line)],
                          T.FIXED)
        if name == "latest_slot":
            if len(args) != 2 or kwargs:
                raise self._error(node, "write latest_slot(DEVICE, SENSOR)")
            device = self._expr(args[0], scope)
            self._expect(args[0], device, (T.DEVICE,), "the device")
            sensor = self._word(args[1], SENSORS, "sensor")
            return _Value([*device.code, Emit(Op.PUSH, (sensor,), line), Emit(Op.SEEN, (), line)], T.INT)
        if name not in ("balance", "min", "max", "abs", "int", "len"):
            raise self._error(node, f"unknown function `{name}`")
        if kwargs:
            raise self._error(node, f"{name}(...) takes no name=value arguments")
        values = [] if name == "len" else [self._expr(a, scope) for a in args]
        if name == "balance":
            if len(values) != 1:
                raise self._error(node, "write balance(DEVICE)")
            self._expect(args[0], values[0], (T.DEVICE,), "balance(...) of")
            return _Value([*values[0].code, Emit(Op.BALANCE, (), line)], T.INT)
        if name in ("min", "max"):
            if len(values) < 2:
                raise self._error(node, f"{name}(...) compares two or more numbers")
            for a, v in zip(args, values):
                self._expect(a, v, NUMBERS, f"{name}(...) of")
            type_ = T.FIXED if any(v.type is T.FIXED for v in values) else T.INT
            opcode = Op.MIN if name == "min" else Op.MAX
            code = self._coerce(args[0], values[0], type_, "this")
            for a, v in zip(args[1:], values[1:]):
                code += [*self._coerce(a, v, type_, "this"), Emit(opcode, (), line)]
            return _Value(code, type_)
        if name == "abs":
            if len(values) != 1:
                raise self._error(node, "write abs(NUMBER)")
            self._expect(args[0], values[0], NUMBERS, "abs(...) of")
            return _Value([*values[0].code, Emit(Op.ABS, (), line)], values[0].type)
        if name == "int":
            if len(values) != 1:
                raise self._error(node, "write int(NUMBER)")
            self._expect(args[0], values[0], NUMBERS, "int(...) of")
            if values[0].type is T.INT:
                return values[0]
            if values[0].const is not None:
                return self._const(node, T.INT, arith.div(values[0].const, arith.FIXED_SCALE))
            return _Value([*values[0].code, Emit(Op.PUSH, (arith.FIXED_SCALE,), line), Emit(Op.DIV, (), line)], T.INT)
        if name == "len":
            if len(args) != 1:
                raise self._error(node, "write len(GROUP)")
            return _Value([Emit(Op.GROUPLEN, (self._group_index(args[0]),), line)], T.INT)
        raise self._error(node, f"unknown function `{name}`")

    def _call_function(self, node: ast.Call, scope: _Scope) -> tuple[list, T | None]:
        sig = self.functions[_callee(node)]
        if node.keywords or len(node.args) != len(sig.params):
            raise self._error(node, f"`{sig.node.name}` takes {len(sig.params)} argument(s), in order")
        code: list = []
        for a, (pname, ptype) in zip(node.args, sig.params):
            code += self._coerce(a, self._expr(a, scope), ptype, f"argument `{pname}`")
        code.append(Emit(Op.CALL, (sig.index,), node.lineno))
        return code, sig.returns


def _a(type_) -> str:
    """A type with its article, for messages: "an int", "a fixed"."""
    text = str(type_)
    return f"an {text}" if text[0] in "aeiou" else f"a {text}"


def _callee(node) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def _is_state(node) -> bool:
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "state"


def _last_line(node) -> int:
    return getattr(node, "end_lineno", None) or node.lineno


def _always_returns(body: list) -> bool:
    if not body:
        return False
    last = body[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return bool(last.orelse) and _always_returns(last.body) and _always_returns(last.orelse)
    return False
