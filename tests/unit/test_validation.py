"""Request-body validation: compiled schemas found by identity, never by a reused id."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from ciaostack.compat.microversion import Version
from ciaostack.compat.nova import server_schemas
from ciaostack.core import errors, validation


def test_a_schema_built_for_one_request_does_not_validate_a_later_one() -> None:
    """Dicts of the same size freed one after the other usually get the same id; a
    compiled schema found by a bare id would then check the wrong body."""
    for _ in range(20):
        lenient = {"type": "object"}
        validation.validate(lenient, {"anything": 1})
        del lenient
        gc.collect()
        strict = {"type": "object", "required": ["name"]}
        with pytest.raises(errors.BadRequest, match="name"):
            validation.validate(strict, {"anything": 1})
        del strict
        gc.collect()


def test_every_microversion_gets_one_lock_schema_object() -> None:
    for text in ("2.1", "2.72", "2.73", "2.96"):
        mv = Version.parse(text)
        assert server_schemas.lock(mv) is server_schemas.lock(mv)
    body = {"lock": {"locked_reason": ""}}
    with pytest.raises(errors.BadRequest, match="locked_reason"):
        validation.validate(server_schemas.lock(Version(2, 73)), body)


def test_threads_that_meet_a_new_schema_together_compile_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled = []
    real = validation.fastjsonschema.compile

    def counting(schema):  # noqa: ANN001, ANN202
        compiled.append(schema)
        time.sleep(0.05)  # as long as a big schema takes; the other threads run meanwhile
        return real(schema)

    monkeypatch.setattr(validation.fastjsonschema, "compile", counting)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    start = threading.Barrier(8)

    def use() -> None:
        start.wait()
        validation.validate(schema, {"n": 1})

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert compiled == [schema]
