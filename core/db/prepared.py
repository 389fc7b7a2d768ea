"""Core statements compiled once per database dialect and run on the driver's cursor.

Why: a server create runs about twenty statements, and SQLAlchemy's execution path
(cache lookup, parameter processing, execution context, result set-up) costs several
times what SQLite takes to run each of them: in process it was 60 % of a create's
CPU, much of it inside SQLite's single write lock. Here SQLAlchemy still writes the
SQL and supplies the conversions of the types a statement uses (JSON, dates, the
PostgreSQL driver's own wrappers); what is skipped is the per-execution machinery,
which these fixed statements do not need.

Statements are built once (module constants, or cached): each statement object is
compiled once per dialect and parameter names, and its compiled forms live as long
as it does. A statement may hold bound parameters (given, or values fixed in it),
columns with Python-side defaults or on-update values that take no arguments, and
RETURNING (not with a list of parameter sets). It may not hold parameters expanded
when it runs (`IN` over a bound list): `run` refuses those; `run_in` runs one built
for each length of list instead. Connection-level events
(`before_execute`, `before_cursor_execute`) do not see these statements. A failing
statement raises the driver's error wrapped in SQLAlchemy's class for it
(IntegrityError, OperationalError...), so callers catch the same things.
"""

from __future__ import annotations

import collections
import dataclasses
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Dialect, Executable, bindparam, exc
from sqlalchemy.orm import Session

Params = Mapping[str, Any]
Processor = Callable[[Any], Any] | None


@dataclasses.dataclass(frozen=True)
class Rows:
    """What a statement gave: its rows (RETURNING's for a DML statement), the number of
    rows it changed, and for an INSERT of a row whose key the database makes, that key
    (SQLite's rowid, PostgreSQL's RETURNING); None for other statements."""

    rows: list[tuple[Any, ...]]
    rowcount: int
    lastrowid: Any

    def first(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]


@dataclasses.dataclass
class _Compiled:
    sql: str
    # Parameter names in placeholder order (qmark, SQLite), or None for named
    # placeholders (pyformat, psycopg).
    order: tuple[str, ...] | None
    binds: dict[str, Processor]
    fixed: dict[str, Any]  # values bound in the statement itself
    defaults: tuple[tuple[str, Callable[[], Any]], ...]  # columns filled in Python
    columns: list[Any]  # what the rows hold, for their conversions
    row_type: type[tuple[Any, ...]] | None
    is_insert: bool
    # An INSERT's key among RETURNING columns the dialect added (PostgreSQL); None:
    # the driver's lastrowid (SQLite), or not an INSERT.
    key_index: int | None
    # Set at the first run that returns rows: the conversions need the driver's type
    # codes (psycopg's numbers).
    results: tuple[Processor, ...] | None = None


# Per statement object, while it exists: its compiled forms by dialect and parameters.
_CACHE: weakref.WeakKeyDictionary[Executable, dict[tuple[Any, ...], _Compiled]] = (
    weakref.WeakKeyDictionary()
)


def run(
    session: Session, statement: Executable, params: Params | list[Params] | None = None
) -> Rows:
    """Run `statement` in the session's transaction; a list of parameter sets runs it
    once for each (the driver's executemany). Pending objects are flushed first, as
    `Session.execute` would (about half a microsecond when there are none)."""
    many = isinstance(params, list)
    if many and not params:
        return Rows([], 0, None)
    first: Params = params[0] if many else params or {}  # type: ignore[index,assignment]
    if session.autoflush:
        session.flush()
    connection = session.connection()
    dialect = connection.dialect
    forms = _CACHE.get(statement)
    if forms is None:
        forms = _CACHE[statement] = {}
    key = (dialect, many, *first)
    compiled = forms.get(key)
    if compiled is None:
        compiled = forms[key] = _compile(statement, dialect, tuple(first), many)
    values = [_values(compiled, p) for p in params] if many else _values(compiled, first)  # type: ignore[union-attr]
    try:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if many:
                cursor.executemany(compiled.sql, values)
            else:
                cursor.execute(compiled.sql, values)
            return _result(compiled, cursor, dialect)
        finally:
            cursor.close()
    except dialect.loaded_dbapi.Error as error:
        raise exc.DBAPIError.instance(
            compiled.sql, values, error, dialect.loaded_dbapi.Error, dialect=dialect
        ) from error


# Values per IN list: well under SQLite's limit on bound parameters.
IN_CHUNK = 512


def in_list(size: int) -> list[BindParameter[Any]]:
    """The bound parameters of an IN list of `size` values, for `run_in`."""
    return [bindparam(f"in{k}") for k in range(size)]


def run_in(
    session: Session, statement_for: Callable[[int], Executable], values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """The rows of a statement whose IN list (`in_list(size)`) holds `values` (each
    row once, whatever the repeats among them).

    `statement_for(size)` builds the statement for a list of `size` values and must
    return the same object for the same size (cache it): lists are padded to a power
    of two by repeating their last value, so a few forms serve every length and each
    is compiled once."""
    values = list(dict.fromkeys(values))
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(values), IN_CHUNK):
        chunk = list(values[start : start + IN_CHUNK])
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += chunk[-1:] * (size - len(chunk))
        params = {f"in{k}": value for k, value in enumerate(chunk)}
        found += run(session, statement_for(size), params).rows
    return found


def _result(compiled: _Compiled, cursor: Any, dialect: Dialect) -> Rows:
    found = _rows(compiled, cursor, dialect) if cursor.description else []
    lastrowid = None
    if compiled.key_index is not None:
        # The dialect's own RETURNING: the key, not rows the caller asked for.
        lastrowid = found[0][compiled.key_index] if found else None
        found = []
    elif compiled.is_insert:
        lastrowid = getattr(cursor, "lastrowid", None)  # psycopg has none
    return Rows(found, cursor.rowcount, lastrowid)


def _compile(
    statement: Executable, dialect: Dialect, keys: tuple[str, ...], many: bool
) -> _Compiled:
    compiled = statement.compile(  # type: ignore[attr-defined]
        dialect=dialect, column_keys=list(keys), for_executemany=many
    )
    if "POSTCOMPILE" in compiled.string:
        raise ValueError("a prepared statement cannot expand parameters when it runs")
    if many and compiled.effective_returning:
        raise ValueError("a prepared statement returns no rows for a list of parameter sets")
    defaults = tuple(
        (column.key, _no_argument(column.default)) for column in compiled.insert_prefetch
    ) + tuple((column.key, _no_argument(column.onupdate)) for column in compiled.update_prefetch)
    columns = list(compiled.effective_returning or ()) or list(
        getattr(statement, "selected_columns", ())
    )
    key_index = None
    if compiled.implicit_returning:
        key_index = columns.index(compiled.implicit_returning[0])
    return _Compiled(
        sql=compiled.string,
        order=tuple(compiled.positiontup) if compiled.positiontup is not None else None,
        binds={
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        },
        fixed={
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        },
        defaults=defaults,
        columns=columns,
        row_type=collections.namedtuple(  # type: ignore[misc]
            "Row", [c.key or f"_{i}" for i, c in enumerate(columns)], rename=True
        )
        if columns
        else None,
        is_insert=bool(getattr(statement, "is_insert", False)),
        key_index=key_index,
    )


def _no_argument(default: Any) -> Callable[[], Any]:
    """A column's Python-side default as a function of nothing.

    SQLAlchemy wraps a function of no argument in one that takes the execution
    context; there is none here, so a default that reads it fails when it runs."""
    if default.is_scalar:
        value = default.arg
        return lambda: value
    if default.is_callable:
        return lambda: default.arg(None)
    raise ValueError(f"a prepared statement cannot compute the default {default!r}")


def _values(compiled: _Compiled, params: Params) -> tuple[Any, ...] | dict[str, Any]:
    """The driver's parameters: given or fixed values, defaults, each type's conversion."""
    if compiled.defaults:
        params = {**{k: make() for k, make in compiled.defaults}, **params}
    fixed, binds = compiled.fixed, compiled.binds

    def value(name: str) -> Any:
        raw = params[name] if name in params else fixed[name]
        convert = binds[name]
        return raw if convert is None else convert(raw)

    if compiled.order is not None:
        return tuple(value(name) for name in compiled.order)
    return {name: value(name) for name in binds}


def _rows(compiled: _Compiled, cursor: Any, dialect: Dialect) -> list[tuple[Any, ...]]:
    fetched = cursor.fetchall()
    make = compiled.row_type
    if make is None:
        return [tuple(row) for row in fetched]
    results = compiled.results
    if results is None:
        results = compiled.results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(compiled.columns, cursor.description, strict=True)
        )
    if not any(results):
        return [make(*row) for row in fetched]
    return [
        make(*(v if f is None else f(v) for f, v in zip(results, row, strict=True)))
        for row in fetched
    ]
