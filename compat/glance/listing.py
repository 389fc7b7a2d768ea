"""GET /v2/images query parameters -> the image core's ListQuery.

Glance's query language: `name`, `id`, `status`, `container_format` and
`disk_format` take `in:a,b` (values may be double-quoted to contain commas);
`created_at`/`updated_at` take `gt:`, `gte:`, `lt:`, `lte:`, `neq:`, `eq:`
and an ISO 8601 time; `size_min`/`size_max` bound the size; repeated `tag`
parameters must all match; any other unknown key filters on an extra property.
Sorting is `sort=key:dir,key` or `sort_key=..&sort_dir=..` (not both).
"""

from __future__ import annotations

import csv
import datetime as dt
from typing import Any

from ciaostack.core import errors
from ciaostack.core.images.model import MEMBER_STATUSES, VISIBILITIES
from ciaostack.core.images.query import MAX_LIMIT, OPERATORS, SORT_KEYS, Filter, ListQuery

_IN_FILTERS = ("name", "id", "status", "container_format", "disk_format")
_TIME_FILTERS = ("created_at", "updated_at")
_INT_COLUMNS = ("size", "virtual_size", "min_disk", "min_ram")
_STR_COLUMNS = ("owner", "checksum", "os_hash_value", "os_hash_algo")
_RANGES = {"size_min": "gte", "size_max": "lte"}


def _last(value: str | list[str]) -> str:
    return value[-1] if isinstance(value, list) else value


def _all(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _bool(name: str, value: str) -> bool:
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise errors.BadRequest(
            f"Invalid value '{value}' for '{name}' filter. Valid values are 'true' or 'false'."
        )
    return lowered == "true"


# Integer columns are 64-bit: a larger bound is no number the database can compare.
_INT_RANGE = range(-(2**63), 2**63)


def _int(value: str, message: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise errors.BadRequest(message) from exc
    if number not in _INT_RANGE:
        raise errors.BadRequest(message)
    return number


def _time(name: str, value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            # Year 1 or 9999 with an offset leaves datetime's range: OverflowError.
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    except (ValueError, OverflowError) as exc:
        raise errors.BadRequest(
            f'Bad "{name}" query filter format. Use ISO 8601 DateTime notation.'
        ) from exc
    return parsed


def _split_op(value: str, operators: tuple[str, ...]) -> tuple[str, str]:
    head, sep, rest = value.partition(":")
    if sep and head in operators:
        return head, rest
    return "eq", value


def _filter(name: str, raw: str) -> Filter:
    if name in _IN_FILTERS:
        op, value = _split_op(raw, ("in", "eq"))
        if op == "in":
            return Filter(name, "in", next(csv.reader([value])) if value else [""])
        return Filter(name, "eq", value)
    if name in _TIME_FILTERS:
        op, value = _split_op(raw, tuple(o for o in OPERATORS if o != "in"))
        return Filter(name, op, _time(name, value))
    if name in _RANGES:
        bound = _int(raw, "Unable to filter on a range with a non-numeric value.")
        return Filter("size", _RANGES[name], bound)
    if name in _INT_COLUMNS:
        return Filter(name, "eq", _int(raw, f"Invalid value '{raw}' for '{name}' filter."))
    if name == "protected":
        return Filter(name, "eq", _bool(name, raw))
    if name in _STR_COLUMNS:
        return Filter(name, "eq", raw)
    return Filter(name, "eq", raw, prop=True)


def _sort(params: dict[str, Any]) -> list[tuple[str, str]]:
    def key(value: str) -> str:
        value = value.strip()
        if value not in SORT_KEYS:
            raise errors.BadRequest(
                f"Invalid sort key: {value}. It must be one of the following: "
                f"{', '.join(SORT_KEYS)}."
            )
        return value

    def direction(value: str) -> str:
        value = value.strip()
        if value not in ("asc", "desc"):
            raise errors.BadRequest(f"Invalid sort direction: {value}")
        return value

    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise errors.BadRequest("Old and new sorting syntax cannot be combined")
        pairs = []
        for item in _last(params["sort"]).split(","):
            name, _, order = item.partition(":")
            pairs.append((key(name), direction(order or "desc")))
        return pairs
    keys = [key(k) for k in _all(params.get("sort_key", []))]
    dirs = [direction(d) for d in _all(params.get("sort_dir", []))]
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise errors.BadRequest("Number of sort dirs does not match the number of sort keys")
    if not keys:
        return [("created_at", dirs[0] if dirs else "desc")]
    if len(dirs) <= 1:
        return [(k, dirs[0] if dirs else "desc") for k in keys]
    return list(zip(keys, dirs, strict=True))


def parse(params: dict[str, Any]) -> ListQuery:
    params = dict(params)
    query = ListQuery(sort=_sort(params))
    for name in ("sort", "sort_key", "sort_dir"):
        params.pop(name, None)
    if "limit" in params:
        limit = _int(_last(params.pop("limit")), "limit param must be an integer")
        if limit < 0:
            raise errors.BadRequest("limit param must be positive")
        query.limit = min(limit, MAX_LIMIT)
    if "marker" in params:
        query.marker = _last(params.pop("marker"))
    if "member_status" in params:
        query.member_status = _last(params.pop("member_status"))
        if query.member_status not in (*MEMBER_STATUSES, "all"):
            raise errors.BadRequest(f"Invalid status: {query.member_status}")
    if "visibility" in params:
        query.visibility = _last(params.pop("visibility"))
        if query.visibility not in (*VISIBILITIES, "all"):
            raise errors.BadRequest(f"Invalid visibility value: {query.visibility}")
    if "os_hidden" in params:
        query.os_hidden = _bool("os_hidden", _last(params.pop("os_hidden")))
    if "changes-since" in params:
        raise errors.BadRequest('The "changes-since" filter is no longer available on v2.')
    query.tags = [t.strip() for t in _all(params.pop("tag", []))]
    query.filters = [_filter(name, _last(value)) for name, value in params.items()]
    return query
