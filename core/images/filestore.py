"""The default store: image files in one directory (local, or NFS shared by every API host).

Data is written to a temporary file in the same directory tree and renamed
into place only once complete and flushed to disk, so a reader never sees a
partial image and a broken upload leaves nothing behind. Locations are kept
relative to the store directory (`file:ab/<key>`), so the directory can move
or be mounted elsewhere on another host.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from ciaostack.core import errors
from ciaostack.core.images.store import Store

SCHEME = "file:"


class FileSlice:
    """`length` bytes of an open file from its current position.

    It keeps `fileno()` so that gunicorn can sendfile(2) it (gunicorn sends
    from the file's current offset and stops at the response's
    Content-Length); other servers call `read`, which stops at the end of
    the slice.
    """

    def __init__(self, raw, length: int) -> None:  # noqa: ANN001 - an open binary file
        self._raw = raw
        self._left = length

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._raw.read(want)
        self._left -= len(data)
        return data

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()


class FileStore(Store):
    id = "file"
    description = "Image files on the API hosts' filesystem"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True, mode=0o750)

    def _path(self, location: str) -> Path:
        relative = location.removeprefix(SCHEME)
        parts = Path(relative).parts
        if not location.startswith(SCHEME) or not parts or ".." in parts or relative[0] == "/":
            raise ValueError(f"not a file store location: {location!r}")
        return self.root / relative

    def write(self, key: str, chunks: Iterable[bytes]) -> str:
        relative = f"{key[:2]}/{key}"
        final = self.root / relative
        final.parent.mkdir(exist_ok=True, mode=0o750)
        temp = final.with_name(f".{key}.{secrets.token_hex(6)}.part")
        try:
            with open(temp, "xb", buffering=0) as out:
                for chunk in chunks:
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) :]
                os.fsync(out.fileno())
            os.replace(temp, final)
        except BaseException as exc:
            temp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise errors.OverLimit("The image store is full.") from exc
            raise
        return SCHEME + relative

    def open(self, location: str, offset: int = 0, length: int | None = None) -> FileSlice:
        try:
            raw = open(self._path(location), "rb", buffering=0)  # noqa: SIM115 - the caller closes
        except FileNotFoundError as exc:
            raise errors.NotFound("The image data is missing from the store.") from exc
        size = os.fstat(raw.fileno()).st_size
        raw.seek(offset)
        return FileSlice(raw, size - offset if length is None else length)

    def delete(self, location: str) -> None:
        self._path(location).unlink(missing_ok=True)
