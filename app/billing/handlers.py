from __future__ import annotations

from pydantic import PositiveInt

from app.billing import service
from app.bus import Consumed, Envelope
from app.messaging.inbox import ModuleHandler
from app.storage.uow import UnitOfWork


class PersonRegistered(Consumed):
    login: str


class PaymentRequested(Consumed):
    order_id: str
    login: str
    amount: PositiveInt  # a non-positive charge would credit the account: refuse it as poison


def on_person_registered(uow: UnitOfWork, event: Envelope) -> None:
    person = PersonRegistered.model_validate(event.data)
    service.open_account(uow, person.login)


def on_payment_requested(uow: UnitOfWork, event: Envelope) -> None:
    req = PaymentRequested.model_validate(event.data)
    service.pay_order(uow, req.order_id, req.login, req.amount)


SUBSCRIPTIONS: dict[str, ModuleHandler] = {
    "person.registered.v1": on_person_registered,
    "orders.payment_requested.v1": on_payment_requested,
}
