"""Keystone's 404 for an id that names nothing, in one place."""

from __future__ import annotations

from typing import TypeVar

from ciaostack.core import errors

T = TypeVar("T")


def found(row: T | None, noun: str, ident: str) -> T:
    """`row`, or NotFound worded as Keystone words it ("Could not find user: <id>.")."""
    if row is None:
        raise errors.NotFound(f"Could not find {noun}: {ident}.")
    return row
