"""Naming rules of ArangoDB for databases, collections, indexes and document keys.

Two conventions exist. The *traditional* one (the default up to 3.11, and what this server
applies unless ``extended_names`` is on) allows ASCII letters, digits, ``_`` and ``-`` and
requires a letter first (``_`` first only for system objects). The *extended* one (the
default from 3.12 on, ``--database.extended-names``) allows any valid UTF-8 except ``/`` and
control characters, but no leading digit, ``.`` or space, no trailing space, no leading
``_`` for user objects, and the name must be NFC-normalised. Lengths are in bytes:
collections and indexes up to 256 (both conventions), databases up to 64 (traditional) or
128 (extended).

A name illegal under both conventions (empty, leading digit, leading ``_`` for user objects,
a ``/``, longer than 256 bytes) is what portable tests should use.
"""

from __future__ import annotations

import re
import unicodedata

_TRADITIONAL_USER = re.compile(r"[A-Za-z][A-Za-z0-9_\-]*\Z")
_TRADITIONAL_SYSTEM = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
# Document keys: ASCII letters, digits and _ - : . @ ( ) + , = ; $ ! * ' %, 1..254 bytes.
KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-:.@()+,=;$!*'%]{1,254}\Z")

COLLECTION_MAX_BYTES = 256
INDEX_MAX_BYTES = 256
DATABASE_MAX_BYTES_TRADITIONAL = 64
DATABASE_MAX_BYTES_EXTENDED = 128


def _extended_ok(name: str, allow_system: bool, forbid: str = "/") -> bool:
    if not name:
        return False
    for ch in name:
        if ch in forbid or ord(ch) < 32:
            return False
    first = name[0]
    if "0" <= first <= "9":
        return False
    if first == "." or first == " " or name[-1] == " ":
        return False
    if first == "_" and not allow_system:
        return False
    return unicodedata.normalize("NFC", name) == name


def _byte_len(name: str) -> int:
    return len(name.encode("utf-8", "surrogatepass"))


def is_valid_collection_name(name: object, *, allow_system: bool = False, extended: bool = False) -> bool:
    if not isinstance(name, str) or not name:
        return False
    if _byte_len(name) > COLLECTION_MAX_BYTES:
        return False
    if extended:
        return _extended_ok(name, allow_system)
    pattern = _TRADITIONAL_SYSTEM if allow_system else _TRADITIONAL_USER
    return pattern.match(name) is not None


def is_valid_database_name(name: object, *, extended: bool = False) -> bool:
    if not isinstance(name, str) or not name:
        return False
    if extended:
        if _byte_len(name) > DATABASE_MAX_BYTES_EXTENDED:
            return False
        return _extended_ok(name, allow_system=False, forbid="/:")
    if _byte_len(name) > DATABASE_MAX_BYTES_TRADITIONAL:
        return False
    return _TRADITIONAL_USER.match(name) is not None


def is_valid_index_name(name: object, *, extended: bool = False) -> bool:
    if not isinstance(name, str) or not name:
        return False
    if _byte_len(name) > INDEX_MAX_BYTES:
        return False
    if extended:
        return _extended_ok(name, allow_system=True)
    return _TRADITIONAL_USER.match(name) is not None


def is_valid_key(key: object) -> bool:
    return key.__class__ is str and KEY_PATTERN.match(key) is not None  # type: ignore[arg-type]
