from __future__ import annotations

import orjson
from sqlalchemy import bindparam, select, update

from app.money import MAX_MINOR, to_text
from app.orders.events import PaymentRequested
from app.orders.models import messaging, orders
from app.orders.schemas import CreateOrder, OrderOut
from app.problems import BadRequest, NotFound
from app.storage import idempotency
from app.storage.sql import Reader, Sql
from app.storage.types import UtcDateTime
from app.storage.uow import UnitOfWork

# statements are built once and run on the driver (app/storage/sql.py for the measured why)
PLACE = Sql.insert(orders)
SETTLE = Sql(
    update(orders)
    .where(orders.c.id == bindparam("b_id"), orders.c.status == "pending")
    .values(
        status=bindparam("b_status"),
        reason=bindparam("b_reason"),
        settled_at=bindparam("b_now", type_=UtcDateTime),
    )
    .returning(*orders.c)
)
GET = Sql(select(orders).where(orders.c.id == bindparam("b_id")))
LIST = Sql(
    select(orders)
    .where(orders.c.login == bindparam("b_login"))
    .order_by(orders.c.created_at.desc(), orders.c.id.desc())
    .limit(bindparam("b_limit"))
)


def order_total(body: CreateOrder) -> int:
    """The order's price in minor units: ``price``, or the sum of ``items`` when only they are given."""
    items_total = sum(i.quantity * i.price for i in body.items) if body.items else None
    if body.price is None and items_total is None:
        raise BadRequest("give the order's 'price', its 'items', or both")
    if body.price is not None and items_total is not None and body.price != items_total:
        raise PriceMismatch(
            f"price {to_text(body.price)} differs from the items' total {to_text(items_total)}"
        )
    total = body.price if body.price is not None else items_total
    assert total is not None
    if total > MAX_MINOR:
        raise BadRequest("an order may cost at most 1000000000")
    return total


def create_order(uow: UnitOfWork, body: CreateOrder, order_id: str, key: str | None) -> str:
    """Store a pending order and ask billing to pay it; returns the order id (an earlier one on replay)."""
    total = order_total(body)
    if key is not None:
        fp = idempotency.fingerprint(body)
        earlier = idempotency.claim(
            uow, messaging.idempotency, f"create_order:{body.login}", key, fp, order_id
        )
        if earlier is not None:
            return earlier.resource_id
    items = (
        orjson.dumps([{"name": i.name, "quantity": i.quantity, "price": i.price} for i in body.items])
        if body.items
        else None
    )
    uow.run(
        PLACE,
        {
            "id": order_id,
            "login": body.login,
            "price": total,
            "status": "pending",
            "reason": None,
            "description": body.description,
            "items": items.decode() if items else None,
            "created_at": uow.now,
            "settled_at": None,
        },
    )
    uow.note(f"save order {order_id[:8]}…, {to_text(total)}, pending", login=body.login)
    uow.emit(PaymentRequested(order_id=order_id, login=body.login, amount=total), subject=body.login)
    return order_id


def settle(uow: UnitOfWork, order_id: str, status: str, reason: str | None) -> OrderOut | None:
    # only a pending order moves: a repeated or late outcome cannot flip a settled one
    row = uow.first(SETTLE, {"b_id": order_id, "b_status": status, "b_reason": reason, "b_now": uow.now})
    if row is None:
        return None
    order = OrderOut.from_row(row)
    uow.note(f"mark order {order_id[:8]}… {status}", login=order.login)
    return order


def get_order(reader: Reader, order_id: str) -> OrderOut:
    row = reader.first(GET, {"b_id": order_id})
    if row is None:
        raise OrderNotFound(f"no order {order_id!r}")
    return OrderOut.from_row(row)


def list_orders(reader: Reader, login: str, limit: int) -> list[OrderOut]:
    return [OrderOut.from_row(r) for r in reader.all(LIST, {"b_login": login, "b_limit": limit})]


class PriceMismatch(BadRequest):
    slug, title = "price-mismatch", "Price does not match items"


class OrderNotFound(NotFound):
    slug, title = "order-not-found", "Order not found"
