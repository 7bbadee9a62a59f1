"""JSON on the hot path: orjson wherever it gives the standard library's answer, the
standard library wherever it would not.

A run's JSON is encoded and decoded several times on its way (the request body, the
stored entity, the call into the function server and its reply, the answer); orjson does
each several times faster than :mod:`json`. It differs at the edges, and there
:mod:`json` answers as it always did:

* encoding: orjson refuses integers beyond 64 bits, keys that are not strings, strings
  with lone surrogates and nesting deeper than 254 levels; those values are encoded by
  :mod:`json` (ASCII-escaped, compact). Everything else comes out as compact UTF-8.
* decoding: orjson reads an integer beyond 64 bits as a float, silently dropping digits,
  so text with a run of 19 or more digits is decoded by :mod:`json`; so is whatever
  orjson refuses (``NaN`` and ``Infinity``, which :mod:`json` accepts, lone surrogates,
  nesting past 1,024 levels, where :mod:`json` raises ``RecursionError`` as before), and
  invalid JSON is reported in :mod:`json`'s words.

One difference is kept: NaN and the infinities are encoded as ``null``. The standard
library writes ``NaN``, which is not JSON; Go's decoder (the original CLI's) refuses it.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import orjson

#: what orjson would encode its own way and the standard library refuses (or, given a
#: ``default``, hands to it): left to ``default``, as :func:`json.dumps` does
_ENCODE = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

#: every digit made a 9, so that 19 nines in a row are 19 digits in a row: maybe an
#: integer orjson would read as a float (beyond ±2⁶³ or 2⁶⁴). A C scan, several times
#: quicker than a regular expression over text full of timestamps and UUIDs.
_DIGITS_TO_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_LONG_DIGITS = b"9" * 19


def dumpb(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """``value`` as compact JSON, UTF-8 encoded; ``default`` turns what JSON has no
    type for into what it has (else ``TypeError``), as :func:`json.dumps`'s does."""
    try:
        return orjson.dumps(value, default, _ENCODE)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), default=default).encode()


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as compact JSON text."""
    return dumpb(value, default).decode()


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """The value of the JSON text ``data``; ``ValueError`` (``json.JSONDecodeError``) if it
    is not JSON, ``RecursionError`` if nested too deep, as :func:`json.loads` raises."""
    try:
        raw = data.encode() if isinstance(data, str) else data if isinstance(data, bytes) else bytes(data)
    except UnicodeEncodeError:  # lone surrogates: json reads them
        return json.loads(data)
    if _LONG_DIGITS not in raw.translate(_DIGITS_TO_NINES):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json's answer, or json's error message
    return json.loads(data)


__all__ = ["dumpb", "dumps", "loads"]
