from __future__ import annotations

from typing import Literal

from app.bus import Consumed, Envelope
from app.messaging.inbox import ModuleHandler
from app.orders import service
from app.orders.replies import Replies
from app.orders.schemas import OrderOut
from app.storage.uow import UnitOfWork


class PaymentSucceeded(Consumed):
    order_id: str


class PaymentFailed(Consumed):
    order_id: str
    reason: Literal["insufficient_funds", "account_not_found"]


def on_payment_succeeded(uow: UnitOfWork, event: Envelope, replies: Replies) -> None:
    paid = PaymentSucceeded.model_validate(event.data)
    _answer(uow, replies, service.settle(uow, paid.order_id, "paid", None))


def on_payment_failed(uow: UnitOfWork, event: Envelope, replies: Replies) -> None:
    failed = PaymentFailed.model_validate(event.data)
    _answer(uow, replies, service.settle(uow, failed.order_id, "rejected", failed.reason))


def _answer(uow: UnitOfWork, replies: Replies, order: OrderOut | None) -> None:
    # the waiting createOrder request gets the settled order once it is committed, with no second read
    if order is not None:
        uow.after_commit(lambda: replies.settled(order))


SUBSCRIPTIONS: dict[str, ModuleHandler] = {
    "billing.payment_succeeded.v1": on_payment_succeeded,
    "billing.payment_failed.v1": on_payment_failed,
}
