"""The JSON request body handler: bounded in size and in nesting.

falcon's default handler reads a body of any length into memory and lets
json's RecursionError (a body like `[[[[...`) escape as a 500 with a
traceback. Request bodies of the JSON APIs are small (Keystone and Nova cap
theirs near 112 KiB), so one larger than MAX_BODY is refused with 413 before
it is read, and one too deeply nested is malformed JSON: 400.

orjson parses and writes JSON several times faster than the standard library,
which shows on the busiest calls (a token with its catalog is mostly JSON
work); it refuses what the standard library would also fail on or should
(NaN, non-string keys), and nests at most 1024 levels.
"""

from __future__ import annotations

from typing import Any

import falcon
import orjson
from falcon.media import JSONHandler

from ciaostack.core import errors

#: Largest JSON request body read, as Glance's own JSON reader allows.
MAX_BODY = 1 << 20


class BoundedJSONHandler(JSONHandler):
    def __init__(self) -> None:
        super().__init__(dumps=orjson.dumps, loads=orjson.loads)

    def deserialize(
        self, stream: falcon.typing.ReadableIO, content_type: str | None, content_length: int | None
    ) -> Any:
        if content_length is not None and content_length > MAX_BODY:
            raise errors.OverLimit(f"The request body is larger than {MAX_BODY} bytes.")
        data = stream.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise errors.OverLimit(f"The request body is larger than {MAX_BODY} bytes.")
        return self._deserialize(data)
