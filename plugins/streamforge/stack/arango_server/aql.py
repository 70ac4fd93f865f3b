"""A small AQL subset: enough for the queries StreamForge and python-arango issue.

Supported (keywords case-insensitive, any whitespace/comments, any variable names)::

    RETURN <expr>
    FOR <var> IN <collection | @@bind | @bind-array | [array]>
        ( FILTER <expr>
        | SORT <expr> [ASC|DESC], ...
        | LIMIT [<offset>,] <count>
        )*
        [ COLLECT AGGREGATE <v> = <FN>(<expr>), ...      -- FN: COUNT LENGTH MIN MAX SUM AVG AVERAGE
        | COLLECT WITH COUNT INTO <v> ]                    -- then FILTER/SORT/LIMIT on the new vars
        RETURN [DISTINCT] <expr>

Expressions: literals (null, booleans, numbers, strings, arrays, objects), bind parameters,
variables, attribute access (``d.a``, ``d.@attr``, ``d["a"]``, ``d.a.b``), comparisons
(``== != < <= > >= IN NOT IN``), ``AND``/``&&``, ``OR``/``||``, ``NOT``/``!``, parentheses.
Everything else (arithmetic, function calls outside COLLECT AGGREGATE, grouping COLLECT,
LET, nested FOR, data modification, graph traversals ...) is answered with error 1501 and the
message ``query not supported by the ArangoDB test server: ...``.

Evaluation follows AQL: comparison across types by type order (see ``values``), a missing
attribute is null, FILTER keeps rows whose condition is truthy, an aggregate-only COLLECT yields
exactly one row even for no input, MIN/MAX/AVG ignore nulls and give null without values,
COUNT/LENGTH count rows.

Expressions are compiled to Python lambdas once per query; the generated source never contains
text from the query other than through ``repr`` of constants, which live in the namespace.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import errors as E
from . import values as V
from .errors import ArangoError

UNSUPPORTED = "query not supported by the ArangoDB test server"

_KEYWORDS = {
    "FOR", "IN", "FILTER", "SORT", "LIMIT", "RETURN", "COLLECT", "AGGREGATE", "INTO", "ASC", "DESC",
    "AND", "OR", "NOT", "NULL", "TRUE", "FALSE", "DISTINCT", "LET", "WITH", "INSERT", "UPDATE",
    "REPLACE", "REMOVE", "UPSERT", "WINDOW", "KEEP", "OPTIONS", "PRUNE", "SEARCH", "LIKE", "GRAPH",
    "OUTBOUND", "INBOUND", "ANY", "ALL", "NONE", "AT", "LEAST", "SHORTEST_PATH", "K_SHORTEST_PATHS",
    "K_PATHS", "ALL_SHORTEST_PATHS",
}  # fmt: skip

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|//[^\n]*|/\*.*?\*/)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<bindc>@@[A-Za-z0-9_]+)
  | (?P<bind>@[A-Za-z0-9_]+)
  | (?P<qid>`(?:[^`\\]|\\.)*`|\u00b4(?:[^\u00b4\\]|\\.)*\u00b4)
  | (?P<id>[A-Za-z_$][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|&&|\|\||!~|=~|\.\.|[<>!.,()\[\]{}:=*+\-/%?])
    """,
    re.VERBOSE | re.DOTALL,
)

_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
    "/": "/",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
}


def _unsupported(what: str, query: str) -> ArangoError:
    short = " ".join(query.split())
    if len(short) > 300:
        short = short[:300] + "..."
    return ArangoError(E.ERROR_QUERY_PARSE, f"{UNSUPPORTED}: {what} (query: {short})")


def _unescape(body: str) -> str:
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt == "u" and i + 5 < len(body):
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class Tok:
    kind: str  # kw id num str bind bindc op eof
    value: Any
    pos: int


def tokenize(query: str) -> list[Tok]:
    toks: list[Tok] = []
    pos = 0
    n = len(query)
    while pos < n:
        m = _TOKEN.match(query, pos)
        if m is None:
            raise _unsupported(f"unexpected character {query[pos]!r} at position {pos}", query)
        kind = m.lastgroup
        text = m.group()
        if kind == "ws":
            pass
        elif kind == "num":
            value: Any = float(text) if any(c in text for c in ".eE") else int(text)
            toks.append(Tok("num", value, pos))
        elif kind == "str":
            toks.append(Tok("str", _unescape(text[1:-1]), pos))
        elif kind == "bindc":
            toks.append(Tok("bindc", text[2:], pos))
        elif kind == "bind":
            toks.append(Tok("bind", text[1:], pos))
        elif kind == "qid":
            toks.append(Tok("id", _unescape(text[1:-1]), pos))
        elif kind == "id":
            upper = text.upper()
            toks.append(Tok("kw", upper, pos) if upper in _KEYWORDS else Tok("id", text, pos))
        else:
            toks.append(Tok("op", text, pos))
        pos = m.end()
    toks.append(Tok("eof", None, n))
    return toks


# ----- AST ---------------------------------------------------------------------------------------
# Expressions are tuples: ("lit", v) ("bind", name) ("var", name) ("attr", obj, name_node)
# ("index", obj, expr) ("cmp", op, a, b) ("in", a, b, negated) ("and", a, b) ("or", a, b)
# ("not", a) ("obj", [(key, node)]) ("arr", [node]) ("call", NAME, [node])


@dataclass
class Query:
    text: str
    for_var: str | None = None
    source: tuple | None = None  # ("coll", name) | ("bindc", name) | expression
    ops: list[tuple] = field(default_factory=list)
    ret: tuple | None = None
    distinct: bool = False
    bind_names: set[str] = field(default_factory=set)


class Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = tokenize(query)
        self.i = 0
        self.binds: set[str] = set()

    # helpers
    def peek(self, k: int = 0) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def at_kw(self, *words: str) -> bool:
        t = self.peek()
        return t.kind == "kw" and t.value in words

    def at_op(self, *ops: str) -> bool:
        t = self.peek()
        return t.kind == "op" and t.value in ops

    def expect_kw(self, word: str) -> None:
        if not self.at_kw(word):
            raise self.error(f"expected {word}")
        self.i += 1

    def expect_op(self, op: str) -> None:
        if not self.at_op(op):
            raise self.error(f"expected '{op}'")
        self.i += 1

    def error(self, what: str) -> ArangoError:
        t = self.peek()
        near = self.query[t.pos : t.pos + 30] if t.kind != "eof" else "end of query"
        return _unsupported(f"{what} near '{near}' at position {t.pos}", self.query)

    def ident(self) -> str:
        t = self.peek()
        if t.kind != "id":
            raise self.error("expected a variable name")
        self.i += 1
        return t.value

    # statements
    def parse(self) -> Query:
        if self.peek().kind == "eof":
            raise ArangoError(E.ERROR_QUERY_EMPTY, "query is empty")
        q = Query(text=self.query)
        if self.at_kw("RETURN"):
            self.i += 1
            q.distinct = self._distinct()
            q.ret = self.expr()
        else:
            self.expect_kw("FOR")
            q.for_var = self.ident()
            if self.at_op(","):
                raise self.error("FOR with several variables (views/graphs)")
            self.expect_kw("IN")
            t = self.peek()
            if t.kind == "bindc":
                self.i += 1
                self.binds.add("@" + t.value)
                q.source = ("bindc", t.value)
            elif t.kind == "id" and not (self.peek(1).kind == "op" and self.peek(1).value in ("(", ".", "[")):
                self.i += 1
                q.source = ("coll", t.value)
            else:
                q.source = self.expr()
            if self.at_kw("OPTIONS", "SEARCH", "PRUNE"):
                raise self.error(f"{self.peek().value} clause")
            while True:
                if self.at_kw("FILTER"):
                    self.i += 1
                    q.ops.append(("filter", self.expr()))
                elif self.at_kw("SORT"):
                    self.i += 1
                    items = [self._sort_item()]
                    while self.at_op(","):
                        self.i += 1
                        items.append(self._sort_item())
                    q.ops.append(("sort", items))
                elif self.at_kw("LIMIT"):
                    self.i += 1
                    first = self.expr()
                    if self.at_op(","):
                        self.i += 1
                        q.ops.append(("limit", first, self.expr()))
                    else:
                        q.ops.append(("limit", ("lit", 0), first))
                elif self.at_kw("COLLECT"):
                    self.i += 1
                    q.ops.append(self._collect())
                elif self.at_kw("RETURN"):
                    self.i += 1
                    q.distinct = self._distinct()
                    q.ret = self.expr()
                    break
                else:
                    t = self.peek()
                    found = t.value if t.kind != "eof" else "end of query"
                    raise self.error(f"{found} (expected FILTER, SORT, LIMIT, COLLECT or RETURN)")
        if self.peek().kind != "eof":
            raise self.error("text after RETURN")
        q.bind_names = self.binds
        return q

    def _distinct(self) -> bool:
        if self.at_kw("DISTINCT"):
            self.i += 1
            return True
        return False

    def _sort_item(self) -> tuple:
        e = self.expr()
        desc = False
        if self.at_kw("ASC", "DESC"):
            desc = self.next().value == "DESC"
        return (e, desc)

    def _collect(self) -> tuple:
        if self.at_kw("WITH"):
            self.i += 1
            t = self.next()
            if not (t.kind == "id" and t.value.upper() == "COUNT"):
                raise self.error("expected COUNT")
            self.expect_kw("INTO")
            return ("count_into", self.ident())
        if not self.at_kw("AGGREGATE"):
            raise self.error("grouping COLLECT (only COLLECT AGGREGATE and COLLECT WITH COUNT INTO are)")
        self.i += 1
        aggs = []
        while True:
            name = self.ident()
            self.expect_op("=")
            fn_tok = self.next()
            if fn_tok.kind not in ("id", "kw"):
                raise self.error("expected an aggregate function")
            fn = str(fn_tok.value).upper()
            if fn == "AVERAGE":
                fn = "AVG"
            if fn == "LENGTH":
                fn = "COUNT"
            if fn not in ("COUNT", "MIN", "MAX", "SUM", "AVG"):
                raise self.error(f"aggregate function {fn}")
            self.expect_op("(")
            arg = ("lit", None) if self.at_op(")") else self.expr()
            self.expect_op(")")
            aggs.append((name, fn, arg))
            if not self.at_op(","):
                break
            self.i += 1
        if self.at_kw("INTO", "OPTIONS", "KEEP"):
            raise self.error(f"COLLECT ... {self.peek().value}")
        return ("aggregate", aggs)

    # expressions, lowest precedence first
    def expr(self) -> tuple:
        if self.at_op("?"):
            raise self.error("ternary operator")
        left = self._and()
        while self.at_kw("OR") or self.at_op("||"):
            self.i += 1
            left = ("or", left, self._and())
        if self.at_op("?"):
            raise self.error("ternary operator")
        return left

    def _and(self) -> tuple:
        left = self._not()
        while self.at_kw("AND") or self.at_op("&&"):
            self.i += 1
            left = ("and", left, self._not())
        return left

    def _not(self) -> tuple:
        if self.at_kw("NOT") or self.at_op("!"):
            self.i += 1
            return ("not", self._not())
        return self._cmp()

    def _cmp(self) -> tuple:
        left = self._unary()
        while True:
            if self.at_op("==", "!=", "<", "<=", ">", ">="):
                op = self.next().value
                left = ("cmp", op, left, self._unary())
            elif self.at_kw("IN"):
                self.i += 1
                left = ("in", left, self._unary(), False)
            elif self.at_kw("NOT") and self.peek(1).kind == "kw" and self.peek(1).value == "IN":
                self.i += 2
                left = ("in", left, self._unary(), True)
            elif self.at_kw("LIKE") or self.at_op("=~", "!~", "+", "-", "*", "/", "%", ".."):
                raise self.error(f"operator {self.peek().value}")
            elif self.at_kw("ANY", "ALL", "NONE", "AT"):
                raise self.error("array comparison operators")
            else:
                return left

    def _unary(self) -> tuple:
        if self.at_op("-", "+"):
            sign = self.next().value
            t = self.peek()
            if t.kind == "num":
                self.i += 1
                return ("lit", -t.value if sign == "-" else t.value)
            raise self.error("arithmetic")
        return self._postfix(self._primary())

    def _postfix(self, node: tuple) -> tuple:
        while True:
            if self.at_op("."):
                self.i += 1
                t = self.next()
                if t.kind in ("id", "kw"):
                    node = ("attr", node, ("lit", t.value if t.kind == "id" else self._kw_text(t)))
                elif t.kind == "str":
                    node = ("attr", node, ("lit", t.value))
                elif t.kind == "bind":
                    self.binds.add(t.value)
                    node = ("attr", node, ("bind", t.value))
                else:
                    raise self.error("expected an attribute name")
            elif self.at_op("["):
                self.i += 1
                if self.at_op("*", "]"):
                    raise self.error("array expansion / inline expressions")
                idx = self.expr()
                self.expect_op("]")
                node = ("index", node, idx)
            else:
                return node

    def _kw_text(self, t: Tok) -> str:
        # attribute names that happen to be keywords keep their original spelling
        return self.query[t.pos : t.pos + len(t.value)]

    def _primary(self) -> tuple:
        t = self.next()
        if t.kind == "num" or t.kind == "str":
            return ("lit", t.value)
        if t.kind == "kw":
            if t.value == "NULL":
                return ("lit", None)
            if t.value == "TRUE":
                return ("lit", True)
            if t.value == "FALSE":
                return ("lit", False)
            self.i -= 1
            raise self.error(f"keyword {t.value} in an expression")
        if t.kind == "bind":
            self.binds.add(t.value)
            return ("bind", t.value)
        if t.kind == "bindc":
            self.i -= 1
            raise self.error("collection bind parameter in an expression")
        if t.kind == "id":
            if self.at_op("("):
                self.i -= 1
                raise self.error(f"function {t.value.upper()}()")
            if self.at_op("::"):
                raise self.error("user-defined functions")
            return ("var", t.value)
        if t.kind == "op" and t.value == "(":
            if self.at_kw("FOR", "RETURN", "LET"):
                raise self.error("subqueries")
            e = self.expr()
            self.expect_op(")")
            return e
        if t.kind == "op" and t.value == "[":
            items = []
            while not self.at_op("]"):
                items.append(self.expr())
                if not self.at_op(","):
                    break
                self.i += 1
            self.expect_op("]")
            return ("arr", items)
        if t.kind == "op" and t.value == "{":
            pairs = []
            while not self.at_op("}"):
                k = self.next()
                if k.kind in ("id", "str"):
                    key = k.value
                elif k.kind == "kw":
                    key = self._kw_text(k)
                elif k.kind == "num":
                    key = str(k.value)
                else:
                    self.i -= 1
                    raise self.error("computed attribute names")
                if self.at_op(":"):
                    self.i += 1
                    pairs.append((key, self.expr()))
                elif k.kind == "id":
                    pairs.append((key, ("var", key)))
                else:
                    raise self.error("expected ':'")
                if not self.at_op(","):
                    break
                self.i += 1
            self.expect_op("}")
            return ("obj", pairs)
        self.i -= 1
        raise self.error("unexpected token")


# ----- compilation -------------------------------------------------------------------------------

_BOOLEAN_NODES = {"cmp", "in", "not"}


def _is_bool(node: tuple) -> bool:
    """Whether the node always evaluates to a Python bool (so plain and/or/not are exact)."""
    kind = node[0]
    if kind in _BOOLEAN_NODES:
        return True
    return kind in ("and", "or") and _is_bool(node[1]) and _is_bool(node[2])


def _attr(obj: Any, name: str) -> Any:
    return obj.get(name) if obj.__class__ is dict else None


def _index(obj: Any, key: Any) -> Any:
    cls = obj.__class__
    if cls is dict:
        return obj.get(key) if key.__class__ is str else None
    if cls is list and key.__class__ is int:
        try:
            return obj[key]
        except IndexError:
            return None
    return None


def _in(value: Any, seq: Any) -> bool:
    if seq.__class__ is not list:
        return False
    eq = V.eq
    return any(eq(value, x) for x in seq)


def _and(a: Any, b: Any) -> Any:
    return b if V.truthy(a) else a


def _or(a: Any, b: Any) -> Any:
    return a if V.truthy(a) else b


_NAMESPACE_BASE = {
    "_attr": _attr,
    "_index": _index,
    "_in": _in,
    "_and": _and,
    "_or": _or,
    "_truthy": V.truthy,
    "_eq": V.eq,
    "_ne": V.ne,
    "_lt": V.lt,
    "_le": V.le,
    "_gt": V.gt,
    "_ge": V.ge,
}
_CMP_FUNCS = {"==": "_eq", "!=": "_ne", "<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}


class Compiler:
    """Turns expression trees into Python lambdas over one row."""

    def __init__(self, query: str, bind_vars: dict[str, Any]) -> None:
        self.query = query
        self.bind_vars = bind_vars
        self.ns: dict[str, Any] = dict(_NAMESPACE_BASE)

    def const(self, value: Any) -> str:
        if value is None or value is True or value is False:
            return repr(value)
        name = f"_k{len(self.ns)}"
        self.ns[name] = value
        return name

    def _attr_names(self, node: tuple) -> list[str]:
        if node[0] == "lit":
            return [node[1]]
        value = self.bind_vars[node[1]]
        if isinstance(value, str) and value:
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
            return list(value)
        raise ArangoError(E.ERROR_QUERY_BIND_PARAMETER_TYPE, f"bind parameter '{node[1]}' has an invalid value or type")

    def src(self, node: tuple, scope: dict[str, str], dict_vars: frozenset[str]) -> str:
        kind = node[0]
        if kind == "lit":
            return self.const(node[1])
        if kind == "bind":
            return self.const(self.bind_vars[node[1]])
        if kind == "var":
            if node[1] not in scope:
                raise ArangoError(
                    E.ERROR_QUERY_VARIABLE_NAME_UNKNOWN,
                    f"AQL: variable '{node[1]}' is not declared (while parsing)",
                )
            return scope[node[1]]
        if kind == "attr":
            base = node[1]
            out = self.src(base, scope, dict_vars)
            for i, name in enumerate(self._attr_names(node[2])):
                if i == 0 and base[0] == "var" and base[1] in dict_vars:
                    out = f"{out}.get({self.const(name)})"
                else:
                    out = f"_attr({out}, {self.const(name)})"
            return out
        if kind == "index":
            return f"_index({self.src(node[1], scope, dict_vars)}, {self.src(node[2], scope, dict_vars)})"
        if kind == "cmp":
            fn = _CMP_FUNCS[node[1]]
            return f"{fn}({self.src(node[2], scope, dict_vars)}, {self.src(node[3], scope, dict_vars)})"
        if kind == "in":
            test = f"_in({self.src(node[1], scope, dict_vars)}, {self.src(node[2], scope, dict_vars)})"
            return f"(not {test})" if node[3] else test
        if kind in ("and", "or"):
            a = self.src(node[1], scope, dict_vars)
            b = self.src(node[2], scope, dict_vars)
            if _is_bool(node[1]) and _is_bool(node[2]):
                return f"({a} {kind} {b})"
            return f"_{kind}({a}, {b})"
        if kind == "not":
            inner = self.src(node[1], scope, dict_vars)
            return f"(not {inner})" if _is_bool(node[1]) else f"(not _truthy({inner}))"
        if kind == "obj":
            return "{" + ", ".join(f"{k!r}: {self.src(v, scope, dict_vars)}" for k, v in node[1]) + "}"
        if kind == "arr":
            return "[" + ", ".join(self.src(v, scope, dict_vars) for v in node[1]) + "]"
        raise _unsupported(f"expression {kind}", self.query)

    def fn(self, node: tuple, scope: dict[str, str], dict_vars: frozenset[str], arg: str) -> Callable[[Any], Any]:
        body = self.src(node, scope, dict_vars)
        return eval(compile(f"lambda {arg}: {body}", "<aql>", "eval"), self.ns)  # noqa: S307

    def predicate(
        self, node: tuple, scope: dict[str, str], dict_vars: frozenset[str], arg: str
    ) -> Callable[[Any], Any]:
        body = self.src(node, scope, dict_vars)
        if not _is_bool(node):
            body = f"_truthy({body})"
        return eval(compile(f"lambda {arg}: {body}", "<aql>", "eval"), self.ns)  # noqa: S307


# ----- execution -----------------------------------------------------------------------------------


@dataclass
class Result:
    rows: list[Any]
    scanned: int = 0
    filtered: int = 0


def _check_binds(q: Query, bind_vars: dict[str, Any]) -> None:
    for name in sorted(q.bind_names):
        if name not in bind_vars:
            raise ArangoError(
                E.ERROR_QUERY_BIND_PARAMETER_MISSING,
                f"AQL: no value specified for declared bind parameter '{name}' (while parsing)",
            )
    for name in bind_vars:
        if name not in q.bind_names:
            raise ArangoError(
                E.ERROR_QUERY_BIND_PARAMETER_UNDECLARED,
                f"AQL: bind parameter '{name}' was not declared in the query (while parsing)",
            )


def parse(query: Any) -> Query:
    if not isinstance(query, str):
        raise ArangoError(E.ERROR_QUERY_EMPTY, "query is empty")
    return Parser(query).parse()


def _sorted(rows: list[Any], keyfns: list[tuple[Callable[[Any], Any], bool]]) -> list[Any]:
    for keyfn, desc in reversed(keyfns):
        keys = [keyfn(r) for r in rows]
        classes = {k.__class__ for k in keys}
        if classes <= {int, float} or classes == {str}:
            order = sorted(range(len(rows)), key=keys.__getitem__, reverse=desc)
        else:
            cmp = functools.cmp_to_key(lambda i, j, keys=keys: V.compare(keys[i], keys[j]))
            order = sorted(range(len(rows)), key=cmp, reverse=desc)
        rows = [rows[i] for i in order]
    return rows


def _limit_value(value: Any, what: str, query: str, allow_null: bool) -> int | None:
    if value is None and allow_null:
        return None
    if value.__class__ is float and value.is_integer():
        value = int(value)
    if value.__class__ is not int or value < 0:
        raise ArangoError(E.ERROR_QUERY_PARSE, f"AQL: LIMIT {what} must be a non-negative number (while parsing)")
    return value


def _aggregate(rows: list[Any], aggs: list[tuple[str, str, Callable[[Any], Any] | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn, arg in aggs:
        if fn == "COUNT":
            out[name] = len(rows)
            continue
        assert arg is not None
        vals = [v for v in map(arg, rows) if v is not None]
        if fn == "MIN" or fn == "MAX":
            if not vals:
                out[name] = None
                continue
            classes = {v.__class__ for v in vals}
            if classes <= {int, float} or classes == {str}:
                out[name] = min(vals) if fn == "MIN" else max(vals)
            else:
                key = functools.cmp_to_key(V.compare)
                out[name] = min(vals, key=key) if fn == "MIN" else max(vals, key=key)
        else:  # SUM / AVG over numbers; null for non-numeric input
            if any(v.__class__ not in (int, float) for v in vals):
                out[name] = None
            elif fn == "SUM":
                out[name] = sum(vals)
            else:
                out[name] = (sum(vals) / len(vals)) if vals else None
    return out


def execute(
    query: Any,
    bind_vars: dict[str, Any] | None,
    resolve_collection: Callable[[str], list[dict]],
) -> Result:
    """Run a query. ``resolve_collection(name)`` returns a snapshot of that collection's documents
    (or raises the not-found error)."""
    bind_vars = dict(bind_vars or {})
    q = parse(query)
    _check_binds(q, bind_vars)
    comp = Compiler(q.text, bind_vars)

    if q.for_var is None:
        assert q.ret is not None
        value = comp.fn(q.ret, {}, frozenset(), "row")(None)
        return Result(rows=[value])

    var = q.for_var
    dict_vars: frozenset[str] = frozenset()
    source = q.source
    assert source is not None
    if source[0] in ("coll", "bindc"):
        if source[0] == "bindc":
            name = bind_vars["@" + source[1]]
            if not isinstance(name, str) or not name:
                raise ArangoError(
                    E.ERROR_QUERY_BIND_PARAMETER_TYPE,
                    f"bind parameter '@{source[1]}' has an invalid value or type",
                )
        else:
            name = source[1]
        rows = resolve_collection(name)
        dict_vars = frozenset([var])
    else:
        value = comp.fn(source, {}, frozenset(), "row")(None)
        if value.__class__ is not list:
            raise ArangoError(
                E.ERROR_QUERY_ARRAY_EXPECTED,
                "AQL: collection or array expected as operand to FOR loop (while executing)",
            )
        rows = list(value)
    result = Result(rows=rows, scanned=len(rows))

    scope = {var: "row"}
    collected = False
    for op in q.ops:
        kind = op[0]
        if kind == "filter":
            pred = comp.predicate(op[1], scope, dict_vars, "row")
            before = len(rows)
            rows = [r for r in rows if pred(r)]
            result.filtered += before - len(rows)
        elif kind == "sort":
            keyfns = [(comp.fn(e, scope, dict_vars, "row"), desc) for e, desc in op[1]]
            rows = _sorted(rows, keyfns)
        elif kind == "limit":
            offset = _limit_value(comp.fn(op[1], {}, frozenset(), "row")(None), "offset", q.text, False)
            count = _limit_value(comp.fn(op[2], {}, frozenset(), "row")(None), "count", q.text, True)
            assert offset is not None
            rows = rows[offset:] if count is None else rows[offset : offset + count]
        elif kind == "aggregate":
            if collected:
                raise _unsupported("several COLLECT statements", q.text)
            aggs = [
                (name, fn, None if fn == "COUNT" else comp.fn(arg, scope, dict_vars, "row")) for name, fn, arg in op[1]
            ]
            rows = [_aggregate(rows, aggs)]
            scope = {name: f"row[{name!r}]" for name, _fn, _arg in op[1]}
            dict_vars = frozenset()
            collected = True
        elif kind == "count_into":
            if collected:
                raise _unsupported("several COLLECT statements", q.text)
            rows = [{op[1]: len(rows)}]
            scope = {op[1]: f"row[{op[1]!r}]"}
            dict_vars = frozenset()
            collected = True
    assert q.ret is not None
    if q.ret == ("var", var) and not collected:
        out = rows
    else:
        ret = comp.fn(q.ret, scope, dict_vars, "row")
        out = [ret(r) for r in rows]
    if q.distinct:
        seen = set()
        unique = []
        for v in out:
            k = V.norm(v)
            if k not in seen:
                seen.add(k)
                unique.append(v)
        out = unique
    result.rows = out
    return result
