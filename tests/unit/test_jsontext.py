"""JSON text through orjson, and the values it cannot write exactly."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json

import pytest

from ciaostack.core import jsontext


class _Colour(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class _Point:
    x: float


@pytest.mark.parametrize(
    "value",
    [
        {"metadata": {"k": "ü"}, "none": None, "load": 0.5, "n": [1, -(2**63), 2**64 - 1]},
        {"state": _Colour.RED},
        [],
        "text",
    ],
)
def test_what_orjson_writes_exactly_reads_back_equal(value: object) -> None:
    text = jsontext.exact(value)
    assert text is not None and json.loads(text) == value
    assert json.loads(text) == json.loads(json.dumps(value))
    assert jsontext.loads(jsontext.dumps(value)) == value


@pytest.mark.parametrize(
    "value",
    [
        {"load": float("inf"), "held": None},  # orjson would write null
        {"deep": [{"x": float("nan")}]},
        {"big": 2**70},  # orjson refuses it
        {"small": -(2**63) - 1},  # nineteen digits, read back by orjson as a float
        {1: "a"},  # a key that is not a string
    ],
)
def test_what_orjson_cannot_write_exactly_goes_the_standard_way(value: dict) -> None:
    assert jsontext.exact(value) is None
    stored = jsontext.dumps(value)
    assert stored == json.dumps(value)
    assert json.dumps(jsontext.loads(stored)) == stored  # NaN is not equal to itself


@pytest.mark.parametrize("value", [{"at": dt.datetime(2026, 1, 1)}, {"d": _Point(1.0)}])
def test_what_the_standard_library_refuses_is_still_refused(value: dict) -> None:
    with pytest.raises(TypeError):
        jsontext.dumps(value)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": -9223372036854775809, "m": 18446744073709551615}',
        '{"id": "x-12345678901234567890"}',  # a long run inside a string: read the slow way
        '{"s": "\\ud800"}',  # an escaped lone surrogate, which orjson refuses
        '{"load": Infinity}',
        '{"ü": [1.5, null, true]}',
    ],
)
def test_loads_reads_what_the_standard_library_reads(text: str) -> None:
    expected = json.dumps(json.loads(text))
    assert json.dumps(jsontext.loads(text)) == expected
    assert json.dumps(jsontext.loads(text.encode())) == expected
