"""Billing's rules over in-memory SQLite: accounts, deposits, withdrawals, paying orders, and the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar
from uuid import uuid4

import pytest
from sqlalchemy import Connection, func, select

import app.billing as billing
from app.billing import service
from app.billing.models import accounts, operations, payments
from app.billing.schemas import OperationBody
from app.bus import Envelope
from app.storage.database import Database
from app.storage.uow import UnitOfWork

T = TypeVar("T")
OUTBOX = billing.messaging.outbox


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    database = Database("billing", "sqlite+aiosqlite://", billing.metadata, outbox=OUTBOX)
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


def new_login() -> str:
    return f"u{uuid4().hex[:12]}"


async def run(db: Database, fn: Callable[..., T], *args: Any) -> tuple[T, list[Envelope]]:
    """Run ``fn(uow, *args)`` as one unit of work: its result and the events it emitted."""

    def unit(uow: UnitOfWork) -> tuple[T, list[Envelope]]:
        return fn(uow, *args), list(uow.events)

    return await db.transact(unit)


async def balance(db: Database, login: str) -> int:
    return (await db.read(service.get_balance, login)).balance


async def outbox_rows(db: Database) -> Sequence[Any]:
    def read(conn: Connection) -> Sequence[Any]:
        return conn.execute(select(OUTBOX).order_by(OUTBOX.c.seq)).all()

    return await db.query(read)


async def count(db: Database, table: Any) -> int:
    return int(
        await db.query(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one())
    )


async def account_with(db: Database, minor: int) -> str:
    login = new_login()
    await db.transact(service.open_account, login)
    if minor:
        await db.transact(service.deposit, login, minor)
    return login


def types(events: list[Envelope]) -> list[str]:
    return [e.type for e in events]


async def test_opening_an_account_starts_it_at_zero_and_announces_it(db: Database) -> None:
    login = new_login()
    opened, events = await run(db, service.open_account, login)
    assert opened is True
    assert await balance(db, login) == 0
    assert types(events) == ["billing.account_created.v1", "billing.notification_requested.v1"]
    assert events[0].data["login"] == login
    assert events[0].data["balance"] == 0
    assert {e.subject for e in events} == {login}


async def test_opening_an_account_again_returns_false_and_emits_nothing(db: Database) -> None:
    login = await account_with(db, 500)
    opened, events = await run(db, service.open_account, login)
    assert (opened, events) == (False, [])
    assert await balance(db, login) == 500
    assert await count(db, OUTBOX) == 2


async def test_deposits_add_to_the_balance(db: Database) -> None:
    login = await account_with(db, 0)
    assert await db.transact(service.deposit, login, 500) == 500
    assert await db.transact(service.deposit, login, 250) == 750
    assert await balance(db, login) == 750


async def test_deposit_to_an_unknown_login_raises_account_not_found(db: Database) -> None:
    with pytest.raises(service.AccountNotFound):
        await db.transact(service.deposit, new_login(), 500)
    assert await count(db, accounts) == 0


async def test_withdrawing_more_than_the_balance_raises_and_changes_nothing(db: Database) -> None:
    login = await account_with(db, 1000)
    before = await db.read(service.get_balance, login)
    with pytest.raises(service.InsufficientFunds):
        await db.transact(service.withdraw, login, 1001)
    assert await db.read(service.get_balance, login) == before
    assert await db.transact(service.withdraw, login, 1000) == 0


async def test_a_refused_withdrawal_leaves_no_line_in_the_ledger(db: Database) -> None:
    login = await account_with(db, 1000)
    too_much = OperationBody.model_validate({"login": login, "operation": "withdraw", "sum": "10.01"})
    with pytest.raises(service.InsufficientFunds):
        await db.transact(service.apply_operation, too_much, None)
    assert await count(db, operations) == 0
    enough = OperationBody.model_validate({"login": login, "operation": "withdraw", "sum": "10.00"})
    result = await db.transact(service.apply_operation, enough, None)
    assert (result.sum, result.balance) == (1000, 0)
    assert await count(db, operations) == 1


async def test_paying_an_affordable_order_emits_success_and_a_notice_with_the_amounts(db: Database) -> None:
    login = await account_with(db, 100_000)
    order_id = uuid4().hex
    _, events = await run(db, service.pay_order, order_id, login, 70_000)
    assert types(events) == ["billing.payment_succeeded.v1", "billing.notification_requested.v1"]
    paid, notice = events
    assert paid.data == {"order_id": order_id, "login": login, "amount": 70_000, "balance": 30_000}
    assert (notice.data["kind"], notice.data["order_id"]) == ("payment_succeeded", order_id)
    assert "700.00" in notice.data["text"]
    assert "300.00" in notice.data["text"]
    assert {e.subject for e in events} == {login}
    assert await balance(db, login) == 30_000
    assert await payment_status(db, order_id) == ("paid", None)


async def test_the_same_order_requested_twice_is_charged_once(db: Database) -> None:
    login = await account_with(db, 100_000)
    order_id = uuid4().hex
    await db.transact(service.pay_order, order_id, login, 70_000)
    _, again = await run(db, service.pay_order, order_id, login, 70_000)
    assert again == []
    assert await balance(db, login) == 30_000


async def test_an_unaffordable_order_fails_for_insufficient_funds_and_charges_nothing(db: Database) -> None:
    login = await account_with(db, 100)
    order_id = uuid4().hex
    _, events = await run(db, service.pay_order, order_id, login, 70_000)
    assert types(events) == ["billing.payment_failed.v1", "billing.notification_requested.v1"]
    failed, notice = events
    assert (failed.data["reason"], failed.data["amount"], failed.data["balance"]) == (
        "insufficient_funds",
        70_000,
        100,
    )
    assert notice.data["kind"] == "payment_failed"
    assert "700.00" in notice.data["text"]
    assert "1.00" in notice.data["text"]
    assert await balance(db, login) == 100
    assert await payment_status(db, order_id) == ("rejected", "insufficient_funds")


async def test_an_order_for_an_unknown_login_fails_with_account_not_found(db: Database) -> None:
    login, order_id = new_login(), uuid4().hex
    _, events = await run(db, service.pay_order, order_id, login, 500)
    assert types(events) == ["billing.payment_failed.v1", "billing.notification_requested.v1"]
    assert (events[0].data["reason"], events[0].data["balance"]) == ("account_not_found", None)
    assert await payment_status(db, order_id) == ("rejected", "account_not_found")


async def payment_status(db: Database, order_id: str) -> tuple[str, str | None]:
    def read(conn: Connection) -> tuple[str, str | None]:
        row = conn.execute(
            select(payments.c.status, payments.c.reason).where(payments.c.order_id == order_id)
        ).one()
        return row.status, row.reason

    return await db.query(read)


async def test_emitted_events_are_committed_to_the_outbox_with_the_change(db: Database) -> None:
    login = new_login()
    _, events = await run(db, service.open_account, login)
    rows = await outbox_rows(db)
    assert [r.id for r in rows] == [e.id for e in events]
    assert [r.type for r in rows] == types(events)
    assert [Envelope.from_json(r.envelope) for r in rows] == events
    assert all(r.sent_at is None for r in rows)


async def test_a_unit_of_work_that_raises_leaves_neither_its_change_nor_its_events(db: Database) -> None:
    login = new_login()

    def open_then_fail(uow: UnitOfWork) -> None:
        service.open_account(uow, login)
        service.deposit(uow, login, 500)
        raise RuntimeError("boom after the change")

    with pytest.raises(RuntimeError, match="boom after the change"):
        await db.transact(open_then_fail)
    with pytest.raises(service.AccountNotFound):
        await balance(db, login)
    assert await count(db, OUTBOX) == 0


async def test_group_commit_keeps_every_unit_but_the_one_that_raises(db: Database) -> None:
    logins = [new_login() for _ in range(50)]
    failing = 25
    batches: list[list[str]] = []
    db.on_commit = lambda events: batches.append([e.subject for e in events])

    def open_one(uow: UnitOfWork, i: int) -> bool:
        opened = service.open_account(uow, logins[i])
        if i == failing:
            raise RuntimeError(f"unit {i} fails after writing")
        return opened

    results = await asyncio.gather(*(db.transact(open_one, i) for i in range(50)), return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != failing] == [True] * 49
    assert isinstance(results[failing], RuntimeError)
    assert await count(db, accounts) == 49
    with pytest.raises(service.AccountNotFound):
        await balance(db, logins[failing])
    assert await count(db, OUTBOX) == 49 * 2
    # a batch is a run of the queue, so neighbours in one batch mean the failed unit ran in it too:
    # its savepoint was rolled back, not the batch
    assert any({logins[failing - 1], logins[failing + 1]} <= set(batch) for batch in batches)
    assert logins[failing] not in {s for batch in batches for s in batch}
    assert len(batches) < 50
