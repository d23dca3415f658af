from __future__ import annotations

from typing import ClassVar, Literal

from app.bus import Event


class AccountCreated(Event):
    TYPE: ClassVar[str] = "billing.account_created.v1"

    account_id: str
    login: str
    balance: int


class PaymentSucceeded(Event):
    TYPE: ClassVar[str] = "billing.payment_succeeded.v1"

    order_id: str
    login: str
    amount: int
    balance: int


class PaymentFailed(Event):
    TYPE: ClassVar[str] = "billing.payment_failed.v1"

    order_id: str
    login: str
    amount: int
    reason: Literal["insufficient_funds", "account_not_found"]
    balance: int | None


class NotificationRequested(Event):
    """Billing decides what to tell the customer; Notification stores and shows it."""

    TYPE: ClassVar[str] = "billing.notification_requested.v1"

    login: str
    kind: Literal["account_created", "payment_succeeded", "payment_failed"]
    text: str
    order_id: str | None = None
