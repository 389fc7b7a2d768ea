"""The JSON request body handler: bounded in size and in nesting.

falcon's default handler reads a body of any length into memory and lets
json's RecursionError (a body like `[[[[...`) escape as a 500 with a
traceback. Request bodies of the JSON APIs are small (Keystone and Nova cap
theirs near 112 KiB), so one larger than MAX_BODY is refused with 413 before
it is read, and one too deeply nested is malformed JSON: 400.

Responses are written by orjson, several times faster than the standard
library, which shows on the busiest calls (a token with its catalog is mostly
JSON work). Requests are read by the standard library: orjson would turn an
integer beyond 64 bits into a float and lose digits a client sent.
"""

from __future__ import annotations

import json
from typing import Any

import falcon
import orjson
from falcon.media import JSONHandler

from ciaostack.core import errors

#: Largest JSON request body read, as Glance's own JSON reader allows.
MAX_BODY = 1 << 20


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


class BoundedJSONHandler(JSONHandler):
    def __init__(self) -> None:
        super().__init__(dumps=orjson.dumps, loads=_loads)

    def deserialize(
        self, stream: falcon.typing.ReadableIO, content_type: str | None, content_length: int | None
    ) -> Any:
        if content_length is not None and content_length > MAX_BODY:
            raise errors.OverLimit(f"The request body is larger than {MAX_BODY} bytes.")
        data = stream.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise errors.OverLimit(f"The request body is larger than {MAX_BODY} bytes.")
        return self._deserialize(data)
