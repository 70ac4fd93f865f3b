"""AQL value semantics: type order, comparison, equality, truthiness, hashing.

Type order: null < bool < number < string < array < object. Numbers compare by value
(``1 == 1.0``), booleans are not numbers (``true != 1``). Arrays compare element by element
(a missing element counts as null), objects attribute by attribute over the sorted union of
their attribute names (a missing attribute counts as null).

Known difference: ArangoDB compares strings with an ICU collation (language ``en`` by
default), this module by Unicode code point. Both agree for strings of digits and of
same-case ASCII letters; they disagree for mixed case ("B" < "a" here, "a" < "B" in ArangoDB)
and for some punctuation.
"""

from __future__ import annotations

import json
from typing import Any

_BOOL = "\x00bool"
_JSON = "\x00json"


def rank(value: Any) -> int:
    if value is None:
        return 0
    cls = value.__class__
    if cls is bool:
        return 1
    if cls is int or cls is float:
        return 2
    if cls is str:
        return 3
    if cls is list:
        return 4
    return 5


def compare(a: Any, b: Any) -> int:
    ca = a.__class__
    cb = b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        return (a > b) - (a < b)
    if ca is str and cb is str:
        return (a > b) - (a < b)
    ra = rank(a)
    rb = rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 0:
        return 0
    if ra == 1:
        return (a > b) - (a < b)
    if ra == 4:
        for i in range(max(len(a), len(b))):
            c = compare(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
            if c:
                return c
        return 0
    if ra == 5:
        for k in sorted(set(a) | set(b)):
            c = compare(a.get(k), b.get(k))
            if c:
                return c
        return 0
    return 0


def eq(a: Any, b: Any) -> bool:
    ca = a.__class__
    cb = b.__class__
    if (ca is int or ca is float) and (cb is int or cb is float):
        return a == b
    if ca is str and cb is str:
        return a == b
    return compare(a, b) == 0


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def lt(a: Any, b: Any) -> bool:
    ca = a.__class__
    cb = b.__class__
    if ((ca is int or ca is float) and (cb is int or cb is float)) or (ca is str and cb is str):
        return a < b
    return compare(a, b) < 0


def le(a: Any, b: Any) -> bool:
    ca = a.__class__
    cb = b.__class__
    if ((ca is int or ca is float) and (cb is int or cb is float)) or (ca is str and cb is str):
        return a <= b
    return compare(a, b) <= 0


def gt(a: Any, b: Any) -> bool:
    ca = a.__class__
    cb = b.__class__
    if ((ca is int or ca is float) and (cb is int or cb is float)) or (ca is str and cb is str):
        return a > b
    return compare(a, b) > 0


def ge(a: Any, b: Any) -> bool:
    ca = a.__class__
    cb = b.__class__
    if ((ca is int or ca is float) and (cb is int or cb is float)) or (ca is str and cb is str):
        return a >= b
    return compare(a, b) >= 0


def truthy(value: Any) -> bool:
    if value is None:
        return False
    cls = value.__class__
    if cls is bool:
        return value
    if cls is int or cls is float:
        return value != 0
    if cls is str:
        return value != ""
    return True  # arrays and objects, also empty ones


def norm(value: Any) -> Any:
    """A hashable form of a JSON value consistent with ``eq`` (1 == 1.0, but true != 1)."""
    cls = value.__class__
    if cls is str or cls is int or cls is float or value is None:
        return value
    if cls is bool:
        return (_BOOL, value)
    return (_JSON, json.dumps(value, sort_keys=True, separators=(",", ":")))
