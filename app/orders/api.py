from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from app.bus import new_id
from app.edge.auth import CurrentLogin, require_self
from app.edge.deps import AppSettings, IdempotencyKey, database
from app.edge.fastlane import Call
from app.edge.fields import LOGIN_PATTERN
from app.orders import service
from app.orders.replies import Replies
from app.orders.schemas import CreateOrder, OrderList, OrderOut
from app.problems import declared
from app.storage.database import Database
from app.storage.idempotency import check_key

router = APIRouter(tags=["orders"])


async def _replies(request: Request) -> Replies:
    replies: Replies = request.app.state.replies
    return replies


OrdersDb = Annotated[Database, Depends(database("orders"))]
OrderReplies = Annotated[Replies, Depends(_replies)]


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
    replies: OrderReplies,
    settings: AppSettings,
    current: CurrentLogin,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create an order and answer once billing has paid or rejected it (202 if that takes too long)."""
    require_self(current, body.login)
    return await _place(db, replies, settings.order_reply_timeout, body, check_key(idempotency_key))


async def create_order_fast(call: Call) -> Response | None:
    """createOrder in the fast lane (app/edge/fastlane.py): the same checks, the same core."""
    body = call.json(CreateOrder)
    if body is None:
        return None
    require_self(call.login(), body.login)
    key = call.header(b"idempotency-key")
    state = call.state
    timeout = state.settings.order_reply_timeout
    return await _place(state.dbs["orders"], state.replies, timeout, body, check_key(_text(key)))


async def _place(
    db: Database, replies: Replies, timeout: float, body: CreateOrder, key: str | None
) -> Response:
    order_id = new_id()

    async def place() -> str:
        return await db.transact(service.create_order, body, order_id, key)

    async def read(stored_id: str) -> OrderOut:
        return await db.read(service.get_order, stored_id)

    return _reply(await replies.wait(order_id, timeout, read, place=place))


def _text(header: bytes | None) -> str | None:
    # Starlette decodes header values as latin-1: the same bytes give the same key either way
    return None if header is None else header.decode("latin-1")


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
    order = await db.read(service.get_order, order_id)
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
    return OrderList(orders=await db.read(service.list_orders, login, limit))


# the hot routes' fast lane, by (method, path)
FAST = {("POST", "/order/createOrder"): create_order_fast}
