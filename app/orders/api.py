from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from app.auth import CurrentLogin, require_self
from app.bus import new_id
from app.config import Settings
from app.db import Database
from app.fields import LOGIN_PATTERN
from app.idempotency import check_key
from app.orders import service
from app.orders.schemas import CreateOrder, OrderList, OrderOut
from app.problems import declared

router = APIRouter(tags=["orders"])


async def _db(request: Request) -> Database:
    db: Database = request.app.state.dbs["orders"]
    return db


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


OrdersDb = Annotated[Database, Depends(_db)]
AppSettings = Annotated[Settings, Depends(_settings)]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.post(
    "/order/createOrder",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses={
        202: {"model": OrderOut, "description": "Still pending: poll the Location"},
        **declared(401, 403, 413),
    },
)
async def create_order(
    body: CreateOrder,
    db: OrdersDb,
    settings: AppSettings,
    current: CurrentLogin,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create an order and answer once billing has paid or rejected it (202 if that takes too long)."""
    require_self(current, body.login)
    key = check_key(idempotency_key)
    order_id = new_id()
    settled = db.signals.expect(order_id)
    try:
        stored_id = await db.transact(service.create_order, body, order_id, key)
        if stored_id != order_id:  # a replay: answer for the first order
            db.signals.discard(order_id, settled)
            order_id, settled = stored_id, db.signals.expect(stored_id)
            order = await db.query(service.get_order, order_id)
            if order.status != "pending":
                return _reply(order)
        with contextlib.suppress(TimeoutError):
            order = await asyncio.wait_for(settled, settings.order_reply_timeout)
            # a wake-up from another replica carries no order: read the row it settled
            return _reply(order if order is not None else await db.query(service.get_order, order_id))
    finally:
        db.signals.discard(order_id, settled)
    # no outcome in time: the order row is the truth (it may have settled a moment ago)
    return _reply(await db.query(service.get_order, order_id))


def _reply(order: OrderOut) -> Response:
    body = order.model_dump_json(by_alias=True)
    if order.status == "pending":
        return Response(body, 202, {"Location": f"/order/orders/{order.id}"}, media_type="application/json")
    return Response(body, media_type="application/json")


@router.get(
    "/order/orders/{order_id}",
    response_model=OrderOut,
    response_model_by_alias=True,
    responses=declared(401, 404),
)
async def get_order(
    order_id: Annotated[str, Path(max_length=64)], db: OrdersDb, current: CurrentLogin
) -> OrderOut:
    """One of your orders."""
    order = await db.query(service.get_order, order_id)
    if current is not None and order.login != current:
        # another user's order does not exist for you: 404, not 403, so ids cannot be probed
        raise service.OrderNotFound(f"no order {order_id!r}")
    return order


@router.get(
    "/order/orders", response_model=OrderList, response_model_by_alias=True, responses=declared(401, 403)
)
async def list_orders(
    db: OrdersDb,
    current: CurrentLogin,
    login: Annotated[str, Query(pattern=LOGIN_PATTERN)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> OrderList:
    """A login's orders, newest first."""
    require_self(current, login)
    return OrderList(orders=await db.query(service.list_orders, login, limit))
