"""The unit of work: what a service or handler changes a module's database through."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.bus import Envelope, Event, new_id
from app.storage.sql import Params, Row, Sql, Writer


@dataclass(slots=True)
class UnitOfWork:
    """One atomic change to a module's database, with the events it causes. Services execute their
    statements on it (``run``, ``first``, ``all``, ``many``) and emit events; they never commit."""

    source: str
    cursor: Writer
    # the transaction's time (PostgreSQL's now()): one per batch, which every timestamp the unit writes
    # shares (and the SQLite text of which is formatted once)
    now: datetime
    cause: Envelope | None = None
    correlation: str = ""
    traceparent: str = ""
    events: list[Envelope] = field(default_factory=list)
    # (login, text): what this unit changed, in words, told to the flow once it has committed
    notes: list[tuple[str, str]] = field(default_factory=list)
    _after_commit: list[Callable[[], None]] = field(default_factory=list)

    def run(self, sql: Sql, params: Params | None = None) -> int:
        """Execute; the number of rows it changed (an ``insert(..., ignore=True)`` that found the key
        taken changes none)."""
        return self.cursor.run(sql, params)

    def first(self, sql: Sql, params: Params | None = None) -> Row | None:
        return self.cursor.first(sql, params)

    def all(self, sql: Sql, params: Params | None = None) -> list[Row]:
        return self.cursor.all(sql, params)

    def many(self, sql: Sql, params: Sequence[Params]) -> None:
        self.cursor.many(sql, params)

    def emit(self, payload: Event, *, subject: str = "") -> Envelope:
        """Record an event to publish; it goes to this module's outbox in this same transaction."""
        # a request that sent no correlation id starts a flow of its own
        correlation = self.flow_id() or new_id()
        causation = self.cause.id if self.cause is not None else correlation
        envelope = Envelope(
            type=payload.TYPE,
            source=self.source,
            data=payload.model_dump(mode="json"),
            subject=subject,
            correlationid=correlation,
            causationid=causation,
            traceparent=self.traceparent,
        )
        self.events.append(envelope)
        return envelope

    def note(self, text: str, *, login: str) -> None:
        """Say what this unit changed (``withdraw 300.00, balance 700.00``): drawn as the module's
        self-arrow in its flow once the unit commits; nothing is said of a unit that rolls back."""
        self.notes.append((login, text))

    def flow_id(self) -> str:
        """The correlation id of the flow this unit belongs to (its cause's, or its request's)."""
        if self.cause is not None:
            return self.cause.correlationid or self.cause.id
        return self.correlation

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the event loop once this unit has committed (never on rollback)."""
        self._after_commit.append(callback)
