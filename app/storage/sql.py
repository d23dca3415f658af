"""Statements built once with SQLAlchemy, compiled once per dialect, executed on the raw driver.

SQLAlchemy constructs stay the single source of SQL (tables, types and Alembic come from the same
models), but its per-call execution path cost more than the statement itself: ~25 % of the server's
CPU under load went to ``Connection.execute`` against ~7 % in SQLite (py-spy, 64 clients). So a hot
statement is an :class:`Sql`: compiled on first use for a dialect into the driver's own text and
parameter order, with the column types' bind and result processors looked up once. Executing it is
a tuple build and one driver call (``sqlite3`` cursor; asyncpg, whose prepared-statement cache keeps
the plan). Rows come back as named tuples.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.selectable import Select

Row = Any  # a named tuple of the statement's result columns
Params = Mapping[str, Any]
_Processor = Callable[[Any], Any] | None


class Sql:
    """A statement to execute on the driver. Parameters are named as in the construct; literal values
    in it (``status == "pending"``) are bound once, at compile time."""

    __slots__ = ("_compiled", "construct", "name")

    def __init__(self, construct: Executable, name: str = "") -> None:
        self.construct, self.name = construct, name
        self._compiled: dict[str, Compiled] = {}

    def on(self, dialect: Dialect) -> Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = Compiled.of(self.construct, dialect)
        return compiled

    @classmethod
    def insert(cls, table: Table, *columns: str, ignore: bool = False) -> Sql:
        """``INSERT`` of ``columns`` (all but autoincrement keys when none are named); ``ignore`` adds
        ``ON CONFLICT DO NOTHING``: the row count tells whether it inserted (how inboxes dedupe)."""
        names = columns or tuple(c.name for c in table.columns if not _autoincrement(table, c.name))
        values = {name: bindparam(name, type_=table.c[name].type) for name in names}
        if not ignore:
            return cls(insert(table).values(values), f"insert {table.name}")
        # the dialect decides the spelling of ON CONFLICT; both we run on share it
        return cls(_InsertIgnore(table, values), f"insert-ignore {table.name}")


def _autoincrement(table: Table, name: str) -> bool:
    column = table.c[name]
    return bool(column.primary_key and column.autoincrement is True)


class _InsertIgnore(Executable):
    """Compiles as the dialect's own ``INSERT … ON CONFLICT DO NOTHING``."""

    def __init__(self, table: Table, values: Mapping[str, Any]) -> None:
        self.table, self.values = table, values

    def for_dialect(self, dialect: Dialect) -> ClauseElement:
        if dialect.name == "postgresql":
            return postgresql.insert(self.table).values(dict(self.values)).on_conflict_do_nothing()
        return sqlite.insert(self.table).values(dict(self.values)).on_conflict_do_nothing()


@dataclass(frozen=True, slots=True)
class Compiled:
    text: str
    # per positional parameter: the caller's parameter name, or None for a value bound at compile time
    names: tuple[str | None, ...]
    fixed: tuple[Any, ...]
    binds: tuple[_Processor, ...]
    results: tuple[_Processor, ...]
    row: Any  # a namedtuple class, or None when the statement returns no rows

    @classmethod
    def of(cls, construct: Executable, dialect: Dialect) -> Compiled:
        clause = construct.for_dialect(dialect) if isinstance(construct, _InsertIgnore) else construct
        assert isinstance(clause, ClauseElement)
        c = clause.compile(dialect=dialect)
        assert isinstance(c, SQLCompiler)
        order = c.positiontup or []
        names: list[str | None] = []
        fixed: list[Any] = []
        binds: list[_Processor] = []
        for key in order:
            bp = c.binds[key]
            proc = bp.type.dialect_impl(dialect).bind_processor(dialect)
            if bp.required or (bp.value is None and bp.callable is None):
                names.append(bp.key)
                fixed.append(None)
                binds.append(proc)
            else:
                value = bp.effective_value
                names.append(None)
                fixed.append(proc(value) if proc else value)
                binds.append(None)
        columns = _result_columns(clause)
        results = tuple(col.type.dialect_impl(dialect).result_processor(dialect, None) for col in columns)
        row = namedtuple("Row", [col.key for col in columns], rename=True) if columns else None
        return cls(c.string, tuple(names), tuple(fixed), tuple(binds), results, row)

    def args(self, params: Params | None) -> tuple[Any, ...]:
        out = []
        for name, value, proc in zip(self.names, self.fixed, self.binds, strict=True):
            if name is None:
                out.append(value)
            else:
                v = params[name] if params is not None else None
                out.append(proc(v) if proc is not None and v is not None else v)
        return tuple(out)

    def rows(self, raw: Iterable[Sequence[Any]]) -> list[Row]:
        assert self.row is not None, f"no result columns: {self.text}"
        make, procs = self.row._make, self.results
        if not any(procs):
            return [make(r) for r in raw]
        return [
            make(v if p is None or v is None else p(v) for p, v in zip(procs, r, strict=True)) for r in raw
        ]


def _result_columns(construct: ClauseElement) -> list[Any]:
    if isinstance(construct, Select):
        return list(construct.selected_columns)
    if isinstance(construct, UpdateBase) and construct._returning:
        return list(construct.exported_columns)
    return []


class Reader(Protocol):
    """What a read (``Database.read``) and a unit of work execute their statements on."""

    def first(self, sql: Sql, params: Params | None = None) -> Row | None: ...

    def all(self, sql: Sql, params: Params | None = None) -> list[Row]: ...


class Writer(Reader, Protocol):
    def run(self, sql: Sql, params: Params | None = None) -> int:
        """Execute; the number of rows it changed."""

    def many(self, sql: Sql, params: Sequence[Params]) -> None: ...

    def exec(self, text: str) -> None:
        """A statement of no parameters: BEGIN, SAVEPOINT, …"""
