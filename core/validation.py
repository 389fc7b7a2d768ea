"""Request bodies are checked against JSON schemas before any core call."""

from __future__ import annotations

from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from ciaostack.core import errors

_cache: dict[int, Draft202012Validator] = {}


def validate(schema: dict[str, Any], instance: Any) -> None:
    """Raise BadRequest naming the first offending field, as OpenStack APIs do."""
    validator = _cache.get(id(schema))
    if validator is None:
        validator = _cache[id(schema)] = Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        detail = f"Invalid input for field/attribute {where}: " if where else "Invalid input: "
        raise errors.BadRequest(detail + error.message)
