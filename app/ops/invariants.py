"""The invariant checker: reads every module's database and says whether the books add up.

It is the oracle of the crash, chaos and load tests and of ``python -m app check``. It reads across
modules, so like ``app/main.py`` it may import them; it never writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Executable, func, select

from app.billing.models import accounts, operations, payments
from app.billing.models import messaging as billing_messaging
from app.bus import utcnow
from app.notifications.models import messaging as notifications_messaging
from app.notifications.models import notices
from app.orders.models import messaging as orders_messaging
from app.orders.models import orders
from app.person.models import messaging as person_messaging
from app.storage.database import Database

MESSAGING = {
    "person": person_messaging,
    "billing": billing_messaging,
    "orders": orders_messaging,
    "notifications": notifications_messaging,
}


@dataclass(slots=True)
class Invariant:
    name: str
    ok: bool
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


@dataclass(slots=True)
class Report:
    invariants: list[Invariant]

    @property
    def ok(self) -> bool:
        return all(i.ok for i in self.invariants)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "invariants": [
                {"name": i.name, "ok": i.ok, "figures": i.figures, "detail": i.detail}
                for i in self.invariants
            ],
        }

    def render(self) -> str:
        lines = []
        for i in self.invariants:
            figures = ", ".join(f"{k}={v}" for k, v in i.figures.items())
            lines.append(
                f"{'ok  ' if i.ok else 'FAIL'} {i.name}: {figures}" + (f" — {i.detail}" if i.detail else "")
            )
        lines.append("all invariants hold" if self.ok else "INVARIANTS VIOLATED")
        return "\n".join(lines)


async def check(
    dbs: Mapping[str, Database],
    *,
    pending_grace: timedelta = timedelta(seconds=5),
    outbox_bound: timedelta = timedelta(seconds=30),
) -> Report:
    """Check what the databases given hold; invariants needing a module that is not given are skipped."""
    out: list[Invariant] = []
    billing, orders_db, notes = dbs.get("billing"), dbs.get("orders"), dbs.get("notifications")
    if billing is not None:
        out += await _money(billing)
    if billing is not None and orders_db is not None:
        out.append(await _charges_match_orders(billing, orders_db))
    if orders_db is not None:
        out.append(await _orders_terminal(orders_db, pending_grace))
    if billing is not None and notes is not None:
        out.append(await _notices(billing, notes))
    for name, db in dbs.items():
        out.append(await _messaging(name, db, outbox_bound))
    return Report(out)


async def _money(db: Database) -> list[Invariant]:
    async with _reading(db) as conn:
        total, negative, count = (
            await conn.execute(
                select(
                    func.coalesce(func.sum(accounts.c.balance), 0),
                    func.count().filter(accounts.c.balance < 0),
                    func.count(),
                )
            )
        ).one()
        by_kind: dict[str, int] = dict(
            (
                await conn.execute(
                    select(operations.c.kind, func.coalesce(func.sum(operations.c.amount), 0)).group_by(
                        operations.c.kind
                    )
                )
            ).all()
        )
        charged = (
            await conn.execute(
                select(func.coalesce(func.sum(payments.c.amount), 0)).where(payments.c.status == "paid")
            )
        ).scalar_one()
        stuck = (
            await conn.execute(select(func.count()).where(payments.c.status.not_in(["paid", "rejected"])))
        ).scalar_one()
    deposits, withdrawals = int(by_kind.get("deposit", 0)), int(by_kind.get("withdraw", 0))
    expected = deposits - withdrawals - int(charged)
    return [
        Invariant(
            "money conservation",
            int(total) == expected,
            {
                "balances": int(total),
                "deposits": deposits,
                "withdrawals": withdrawals,
                "charged": int(charged),
                "expected": expected,
                "accounts": int(count),
            },
            "" if int(total) == expected else f"balances differ from the ledger by {int(total) - expected}",
        ),
        Invariant("no negative balance", int(negative) == 0, {"negative_accounts": int(negative)}),
        Invariant("every payment decided", int(stuck) == 0, {"undecided_payments": int(stuck)}),
    ]


async def _charges_match_orders(billing: Database, orders_db: Database) -> Invariant:
    async with _reading(billing) as conn:
        charges = {
            r.order_id: (r.amount, r.status)
            for r in await conn.execute(select(payments.c.order_id, payments.c.amount, payments.c.status))
        }
    async with _reading(orders_db) as conn:
        placed = {
            r.id: (r.price, r.status)
            for r in await conn.execute(select(orders.c.id, orders.c.price, orders.c.status))
        }
    paid_orders = {k for k, (_, s) in placed.items() if s == "paid"}
    charged = {k for k, (_, s) in charges.items() if s == "paid"}
    paid_without_charge = paid_orders - charged
    # a charge whose order is still pending is in flight (the outcome is on its way), not a violation
    charge_for_unpaid = {k for k in charged - paid_orders if placed.get(k, (0, ""))[1] != "pending"}
    wrong_amount = {k for k in paid_orders & charged if placed[k][0] != charges[k][0]}
    rejected_but_charged = {k for k, (_, s) in placed.items() if s == "rejected" and k in charged}
    ok = not (paid_without_charge or charge_for_unpaid or wrong_amount or rejected_but_charged)
    return Invariant(
        "one charge per paid order",
        ok,
        {
            "paid_orders": len(paid_orders),
            "charges": len(charged),
            "paid_without_charge": len(paid_without_charge),
            "charge_without_paid_order": len(charge_for_unpaid),
            "wrong_amount": len(wrong_amount),
            "rejected_but_charged": len(rejected_but_charged),
        },
        _sample(paid_without_charge | charge_for_unpaid | wrong_amount | rejected_but_charged),
    )


async def _orders_terminal(db: Database, grace: timedelta) -> Invariant:
    cutoff = utcnow() - grace
    async with _reading(db) as conn:
        counts: dict[str, int] = dict(
            (await conn.execute(select(orders.c.status, func.count()).group_by(orders.c.status))).all()
        )
        stale = [
            r[0]
            for r in await conn.execute(
                select(orders.c.id)
                .where(orders.c.status == "pending", orders.c.created_at < cutoff)
                .limit(20)
            )
        ]
    odd = set(counts) - {"pending", "paid", "rejected"}
    return Invariant(
        "orders paid, rejected or freshly pending",
        not stale and not odd,
        {
            "paid": int(counts.get("paid", 0)),
            "rejected": int(counts.get("rejected", 0)),
            "pending": int(counts.get("pending", 0)),
            "stale_pending": len(stale),
        },
        _sample(set(stale)) if stale else (f"unknown statuses {sorted(odd)}" if odd else ""),
    )


async def _notices(billing: Database, notes: Database) -> Invariant:
    async with _reading(billing) as conn:
        logins = {r[0] for r in await conn.execute(select(accounts.c.login))}
        decided = {r[0] for r in await conn.execute(select(payments.c.order_id))}
    async with _reading(notes) as conn:
        created: dict[str, int] = dict(
            (
                await conn.execute(
                    select(notices.c.login, func.count())
                    .where(notices.c.type == "account_created")
                    .group_by(notices.c.login)
                )
            ).all()
        )
        per_order: dict[str, int] = dict(
            (
                await conn.execute(
                    select(notices.c.order_id, func.count())
                    .where(notices.c.order_id.is_not(None))
                    .group_by(notices.c.order_id)
                )
            ).all()
        )
    missing_created = {login for login in logins if created.get(login, 0) == 0}
    missing_order = {o for o in decided if per_order.get(o, 0) == 0}
    twice = {k for k, n in {**created, **per_order}.items() if n > 1}
    return Invariant(
        "one notice per account and per settled order",
        not twice and not missing_created and not missing_order,
        {
            "accounts": len(logins),
            "account_notices": sum(created.values()),
            "settled_payments": len(decided),
            "order_notices": sum(per_order.values()),
            "missing": len(missing_created) + len(missing_order),
            "duplicates": len(twice),
        },
        _sample(missing_created | missing_order | twice),
    )


async def _messaging(name: str, db: Database, bound: timedelta) -> Invariant:
    tables = MESSAGING[name]
    cutoff = utcnow() - bound
    async with _reading(db) as conn:
        unsent, old = (
            await conn.execute(
                select(func.count(), func.count().filter(tables.outbox.c.created_at < cutoff)).where(
                    tables.outbox.c.sent_at.is_(None)
                )
            )
        ).one()
        applied, distinct = (
            await conn.execute(
                select(
                    func.count(),
                    func.count(func.distinct(tables.inbox.c.group + ":" + tables.inbox.c.event_id)),
                )
            )
        ).one()
        dead = (await conn.execute(select(func.count()).select_from(tables.deadletter))).scalar_one()
    return Invariant(
        f"{name} outbox drained, inbox once",
        int(old) == 0 and int(applied) == int(distinct),
        {"unsent": int(unsent), "unsent_too_old": int(old), "inbox": int(applied), "dead_letters": int(dead)},
    )


class _Reader:
    """Statements run through ``Database.query``, their results buffered (each is one small read)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def execute(self, stmt: Executable) -> Any:
        frozen = await self.db.query(lambda conn: conn.execute(stmt).freeze())
        return frozen()


@contextlib.asynccontextmanager
async def _reading(db: Database) -> AsyncIterator[_Reader]:
    yield _Reader(db)


def _sample(ids: set[str]) -> str:
    return ", ".join(sorted(ids)[:5]) + (" …" if len(ids) > 5 else "") if ids else ""
