"""File names as the filesystem holds them: bytes, which need not be UTF-8.

A name copied from an old disk or a Windows share can be Latin-1 (`caf\\xe9.mp4`) or plain
garbage (`\\xff\\xfe.mp4`). Python hands such a name over as a str holding one lone surrogate per
byte it could not decode (U+DC80-U+DCFF, PEP 383); that str opens the file, and `os.fsencode`
gives its bytes back, but it cannot be encoded as UTF-8, which SQLite, HDF5, Arrow, JSON files
and terminals all want. This module decides, once, how such a name is kept (exactly) and how it
is shown (readably); every name that is valid UTF-8 is kept and shown as it always was.
"""

from __future__ import annotations

import json
import os
from typing import Any


def is_utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8: false only for a str holding lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def stored(path: str) -> str | bytes:
    """What a table keeps for `path`: the str itself when it is UTF-8, else the name's raw
    bytes (a SQLite BLOB or an HDF5 string of those bytes). A BLOB equals only the same BLOB, so
    a lookup by `stored(path)` finds what `stored(path)` wrote, and no UTF-8 name changes."""
    return path if is_utf8(path) else os.fsencode(path)


def restored(value: str | bytes) -> str:
    """The path `stored` was given back (bytes decode as the filesystem's names do)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def shown(text: str) -> str:
    """`text` (a path, or a message naming one) made printable: bytes of a name that are not
    UTF-8 appear as `\\xNN`. For reading only: the result need not open the file."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no POSIX name decodes to (a Windows name)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def json_line(obj: Any) -> str:
    """`obj` as one line of JSON that gives every path back exactly: UTF-8 text as it is, or,
    when `obj` holds a name that is not UTF-8, with every non-ASCII character escaped (such a
    name's bytes as `\\udcNN`, which `json.loads` reads back as the very same str)."""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True)
    return text if is_utf8(text) else json.dumps(obj, ensure_ascii=True, sort_keys=True)
