"""Core statements compiled once per dialect and sent as driver SQL.

The importer runs a dozen small statements for every 400-record chunk (the ownership
guard and counters, the claims, the journal, the ledger and log rows). Built and executed
as Core statements, each one costs SQLAlchemy 0.1-0.5 ms of Python (constructing the
expressions, generating the cache key, setting up the execution context), held under the
GIL that the purchase and parser threads need too: together more CPU than the statements
take in the database. A Prepared statement is the same Core statement, compiled once per
dialect into its SQL text, the order of its parameters and their bind processors (the
conversions SQLAlchemy would apply: UTC timestamps and JSON text on SQLite), then sent with
the connection's exec_driver_sql: in the caller's transaction, with SQLAlchemy's error
wrapping and disconnect handling, at about a tenth of the cost.

Python-side column defaults (created_at, updated_at's onupdate) are evaluated as SQLAlchemy
would for the columns the statement sets without being given. Statements with values that
SQLAlchemy expands at execution (IN lists, literal_execute) do not fit: use models.one_of's
single-parameter form.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler

Statement = sa.Insert | sa.Update | sa.Delete | sa.Select[Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters in the order the SQL text takes them
    positional: bool
    fixed: dict[str, Any]  # values bound inside the statement itself
    defaults: tuple[tuple[str, Callable[[], Any]], ...]  # Python-side column defaults
    processors: dict[str, Callable[[Any], Any]]


class Prepared:
    """A Core statement, or a function of the dialect building one, executed as driver SQL.

    Args:
        statement: the statement (or `build(dialect)` for one that differs by dialect).
        keys: for an INSERT, the columns the caller gives; the others get their defaults.
    """

    def __init__(
        self,
        statement: Statement | Callable[[sa.Dialect], Statement],
        keys: Sequence[str] | None = None,
    ) -> None:
        if isinstance(statement, sa.ClauseElement):
            self._build: Callable[[sa.Dialect], Statement] = lambda _dialect: statement
        else:
            self._build = statement
        self._keys = list(keys) if keys is not None else None
        self._compiled: weakref.WeakKeyDictionary[sa.Dialect, _Compiled] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(
        self, connection: sa.Connection, params: Mapping[str, Any] | None = None
    ) -> sa.CursorResult[Any]:
        """Execute once with these parameters."""
        compiled = self._for(connection.dialect)
        return connection.exec_driver_sql(compiled.sql, _bound(compiled, params or {}))

    def many(self, connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per row of parameters (the driver's executemany)."""
        compiled = self._for(connection.dialect)
        connection.exec_driver_sql(compiled.sql, [_bound(compiled, row) for row in rows])

    def _for(self, dialect: sa.Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = _compile(self._build(dialect), dialect, self._keys)
        return compiled


def _compile(statement: Statement, dialect: sa.Dialect, keys: list[str] | None) -> _Compiled:
    compiler = statement.compile(dialect=dialect, column_keys=keys)
    assert isinstance(compiler, SQLCompiler)
    if compiler.literal_execute_params or compiler.post_compile_params:
        raise ValueError("a Prepared statement cannot expand parameters at execution")
    binds = {name: bind for bind, name in compiler.bind_names.items()}
    if compiler.positional:
        assert compiler.positiontup is not None
        names = tuple(compiler.positiontup)
    else:
        names = tuple(binds)
    prefetch = [*compiler.insert_prefetch, *compiler.update_prefetch]
    defaults = []
    for column in prefetch:
        default = column.onupdate if compiler.isupdate else column.default
        if not isinstance(default, sa.ColumnDefault) or not default.is_callable:
            raise ValueError(f"{column}: only Python callables are supported as defaults")
        arg = default.arg  # SQLAlchemy wraps a callable of no arguments into fn(context)
        defaults.append((column.key, lambda arg=arg: arg(None)))
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in names:
        processor = binds[name].type.bind_processor(dialect) if name in binds else None
        if processor is not None:
            processors[name] = processor
    fixed = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    sql = compiler.string
    return _Compiled(sql, names, compiler.positional, fixed, tuple(defaults), processors)


def _bound(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
    values = {**compiled.fixed, **params}
    for key, default in compiled.defaults:
        if key not in params:
            values[key] = default()
    processors = compiled.processors
    converted = [
        processors[name](values[name]) if name in processors else values[name]
        for name in compiled.names
    ]
    if compiled.positional:
        return tuple(converted)
    return dict(zip(compiled.names, converted, strict=True))
