from __future__ import annotations

from typing import Literal

from app.bus import Consumed, Envelope
from app.db import UnitOfWork
from app.inbox import ModuleHandler
from app.orders import service


class PaymentSucceeded(Consumed):
    order_id: str


class PaymentFailed(Consumed):
    order_id: str
    reason: Literal["insufficient_funds", "account_not_found"]


def on_payment_succeeded(uow: UnitOfWork, event: Envelope) -> None:
    paid = PaymentSucceeded.model_validate(event.data)
    service.settle(uow, paid.order_id, "paid", None)


def on_payment_failed(uow: UnitOfWork, event: Envelope) -> None:
    failed = PaymentFailed.model_validate(event.data)
    service.settle(uow, failed.order_id, "rejected", failed.reason)


SUBSCRIPTIONS: dict[str, ModuleHandler] = {
    "billing.payment_succeeded.v1": on_payment_succeeded,
    "billing.payment_failed.v1": on_payment_failed,
}
