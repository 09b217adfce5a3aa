"""How the index keeps a video id and asks for many keys at once."""

from __future__ import annotations

import re

CHUNK = 500
"""Keys asked per statement: under SQLite's limit on bound parameters, and large enough that
the statement's own cost vanishes."""
_HEX_ID = re.compile(r"[0-9a-f]{64}")


def key_of(video_id: str) -> bytes | str:
    """What the tables keep for a video id: a SHA-256 in hex as its 32 bytes (half the size, so
    twice the keys per page); any other id as the text it is."""
    return bytes.fromhex(video_id) if _HEX_ID.fullmatch(video_id) else video_id


def id_of(key: bytes | str) -> str:
    """The video id `key_of` was given back."""
    return key.hex() if isinstance(key, bytes) else key


def sort_key(key: bytes | str) -> tuple[int, bytes]:
    """SQLite's order of keys: TEXT before BLOB, each by its bytes (UTF-8 for TEXT, which
    sorts as the code points do)."""
    if isinstance(key, bytes):
        return (1, key)
    return (0, key.encode("utf-8", "surrogatepass"))


SCAN_SHARE = 8
"""Asking for more than 1/SCAN_SHARE of a table's rows scans it instead of looking each up: a
scan reads every page once in order; lookups that many read pages again at random."""
SCAN_MIN = 65_536
"""Questions smaller than this are always lookups (not worth counting the table for)."""
