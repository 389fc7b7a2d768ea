"""Request bodies are checked against JSON schemas before any core call."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema import Draft202012Validator

from ciaostack.core import errors

# Valid bodies, the common case, go through a schema compiled to Python code
# (~20x faster than walking the schema); an invalid one is checked again by
# jsonschema, whose best_match names the offending field. Schemas are module
# constants (or cached per microversion), found by identity; each entry keeps its
# schema alive, so that no other dict can later take its id.
_compiled: dict[int, tuple[dict[str, Any], Callable[[Any], Any]]] = {}
_compiling = threading.Lock()  # a compile takes tens of milliseconds: once per schema
_cache: dict[int, Draft202012Validator] = {}


def _check(schema: dict[str, Any]) -> Callable[[Any], Any]:
    entry = _compiled.get(id(schema))
    if entry is None:
        with _compiling:
            entry = _compiled.get(id(schema))
            if entry is None:
                entry = _compiled[id(schema)] = (schema, fastjsonschema.compile(schema))
    return entry[1]


def validate(schema: dict[str, Any], instance: Any) -> None:
    """Raise BadRequest naming the first offending field, as OpenStack APIs do."""
    check = _check(schema)
    try:
        check(instance)
        return
    except fastjsonschema.JsonSchemaValueException:
        pass
    validator = _cache.get(id(schema))
    if validator is None:
        validator = _cache[id(schema)] = Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        detail = f"Invalid input for field/attribute {where}: " if where else "Invalid input: "
        raise errors.BadRequest(detail + error.message)
