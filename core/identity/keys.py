"""The Fernet key repository: files named 0, 1, 2... in one directory.

File 0 is the staged key (known to every process but not yet used to
encrypt), the highest number is the primary key, the rest are old keys kept so
that tokens issued before a rotation stay valid. Rotation promotes the staged
key, stages a new one and drops the oldest beyond `max_active`, so a key is
known everywhere before anybody encrypts with it.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet


class KeyRepository:
    def __init__(self, path: Path, max_active: int = 3) -> None:
        self.path = Path(path)
        self.max_active = max(max_active, 2)

    def _indexes(self) -> list[int]:
        if not self.path.is_dir():
            return []
        return sorted(int(p.name) for p in self.path.iterdir() if p.name.isdigit())

    def _write(self, index: int, key: bytes) -> None:
        tmp = self.path / f".{index}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
        os.replace(tmp, self.path / str(index))

    def setup(self) -> bool:
        """Create the repository with a staged and a primary key; False if it exists."""
        if self._indexes():
            return False
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write(0, Fernet.generate_key())
        self._write(1, Fernet.generate_key())
        return True

    def rotate(self) -> int:
        """Promote the staged key; returns the new primary's index."""
        indexes = self._indexes()
        if not indexes:
            raise FileNotFoundError(f"no key repository at {self.path}; run token-keys setup")
        new_primary = indexes[-1] + 1
        os.replace(self.path / "0", self.path / str(new_primary))
        self._write(0, Fernet.generate_key())
        kept = [i for i in self._indexes() if i != 0]
        for old in kept[: max(0, len(kept) - (self.max_active - 1))]:
            (self.path / str(old)).unlink()
        return new_primary

    def version(self) -> tuple[int, ...]:
        """Changes whenever the keys change; cheap enough to call per miss."""
        return tuple(self._indexes())

    def load(self) -> MultiFernet:
        indexes = self._indexes()
        if not indexes:
            raise FileNotFoundError(f"no key repository at {self.path}; run token-keys setup")
        ordered = sorted(indexes, reverse=True)  # primary first: it encrypts
        ordered.remove(0)
        ordered.append(0)
        return MultiFernet([Fernet((self.path / str(i)).read_bytes().strip()) for i in ordered])
