"""JSON text written and read by orjson where its output is exact.

orjson is several times faster than the standard library, which matters on the
paths every server takes (the datastore's JSON columns, SSNTP payloads), but it
writes a non-finite float as null, refuses integers beyond 64 bits and reads them
as floats, and writes some values the standard library refuses (dataclasses,
datetimes). `exact` says when it cannot write a value as the standard library
would, `loads` reads such text the standard way, and the callers fall back to
what they used before.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

# Dataclasses, datetimes and subclasses of str, int, dict and list go to the standard
# library, which refuses the first two and writes the others its own way.
_LIKE_JSON = (
    orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def exact(value: Any) -> bytes | None:
    """`value` as compact UTF-8 JSON, or None if orjson would change or refuse it."""
    try:
        text = orjson.dumps(value, option=_LIKE_JSON)
    except TypeError:  # also integers beyond 64 bits, keys that are not strings, deep nesting
        return None
    # A null may stand for an infinity or a NaN: only then is the value walked.
    if b"null" in text and _has_non_finite(value):
        return None
    return text


def dumps(value: Any) -> str:
    """For the datastore: what the standard library wrote, faster."""
    text = exact(value)
    return json.dumps(value) if text is None else text.decode()


# Nineteen digits in a row may be an integer beyond 64 bits (-9223372036854775809 has
# nineteen), or just a long number: either way the standard library reads it. Found
# by turning every digit into "0" and looking for nineteen of them: a tenth of what a
# regular expression takes, and less than orjson's own parse.
_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_RUN = b"0" * 19


def loads(text: str | bytes) -> Any:
    """Reads what `dumps` wrote, the standard library's Infinity and NaN included;
    ValueError for what is not JSON (or, given bytes, not UTF-8)."""
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(raw)  # the bytes already made: orjson need not encode again
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw.decode() if isinstance(text, bytes) else text)


_SKIPPED = frozenset({str, int, bool, type(None)})


def _has_non_finite(value: Any) -> bool:
    """Walked with a stack, the common scalars skipped by their exact type: a payload
    with a None in it (common) pays a few microseconds, not a recursion per value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in _SKIPPED:
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
