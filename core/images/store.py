"""Where image bytes live, behind an interface small enough for any backend.

The image core hands a store an iterator of chunks and gets back a location
string to keep in the datastore; it asks for a reader at an offset to serve a
download, and deletes by location. Hashing, size limits and quotas stay in the
core, so a shared store (RBD, an S3-compatible object store) implements only
these three operations and `ciaostack` picks it by name from `[image] store`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from ciaostack.core.config import Config


class Reader(Protocol):
    """What a download streams from: `read` until b"", then `close`.

    A reader backed by a local file also has `fileno()`, which lets the WSGI
    server send it with sendfile(2) instead of copying it through Python.
    """

    def read(self, size: int = -1) -> bytes: ...

    def close(self) -> None: ...


class Store(abc.ABC):
    """One place image data is kept. Implementations must be safe to share
    between the threads of a worker and between workers and hosts."""

    #: The store's identifier (GET /v2/info/stores, an image's `stores`).
    id: str
    description: str

    @abc.abstractmethod
    def write(self, key: str, chunks: Iterable[bytes]) -> str:
        """Store every chunk under `key`, all or nothing, and return the location.

        If iterating `chunks` raises (a broken upload, a size limit), nothing
        may remain in the store and the exception propagates unchanged; a
        store with no room left raises errors.OverLimit.
        """

    @abc.abstractmethod
    def open(self, location: str, offset: int = 0, length: int | None = None) -> Reader:
        """A reader of `length` bytes (default: to the end) from `offset`;
        errors.NotFound when the data is gone."""

    @abc.abstractmethod
    def delete(self, location: str) -> None:
        """Remove the data; data already gone is not an error."""


def open_store(conf: Config) -> Store:
    """The store `[image] store` names."""
    name = conf.get("image", "store")
    if name == "file":
        from ciaostack.core.images.filestore import FileStore

        return FileStore(Path(conf.get("image", "store_path") or conf.home / "images"))
    raise ValueError(f"[image] store: unknown store {name!r} (this build has: file)")
