from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict

from app.bus import Event


class AccountCreated(Event):
    TYPE: ClassVar[str] = "billing.account_created.v1"
    # payloads as emitted (model_dump): the contract test parses each with every consumer's model
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"account_id": "9d8c7b6a5f4e43d2c1b0a9f8e7d6c5b4", "login": "alice", "balance": 0}]
        }
    )

    account_id: str
    login: str
    balance: int


class PaymentSucceeded(Event):
    TYPE: ClassVar[str] = "billing.payment_succeeded.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "3e9f0c1d2b4a45f6a7b8c9d0e1f2a3b4",
                    "login": "alice",
                    "amount": 30000,
                    "balance": 70000,
                },
            ]
        }
    )

    order_id: str
    login: str
    amount: int
    balance: int


class PaymentFailed(Event):
    TYPE: ClassVar[str] = "billing.payment_failed.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "7a6b5c4d3e2f41a0b9c8d7e6f5a4b3c2",
                    "login": "alice",
                    "amount": 500000,
                    "reason": "insufficient_funds",
                    "balance": 70000,
                },
                {
                    "order_id": "1b2c3d4e5f6a47b8c9d0e1f2a3b4c5d6",
                    "login": "ghost",
                    "amount": 100,
                    "reason": "account_not_found",
                    "balance": None,
                },
            ]
        }
    )

    order_id: str
    login: str
    amount: int
    reason: Literal["insufficient_funds", "account_not_found"]
    balance: int | None


class NotificationRequested(Event):
    """Billing decides what to tell the customer; Notification stores and shows it."""

    TYPE: ClassVar[str] = "billing.notification_requested.v1"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "login": "alice",
                    "kind": "account_created",
                    "text": "Account created for alice: balance 0.00",
                    "order_id": None,
                },
                {
                    "login": "alice",
                    "kind": "payment_succeeded",
                    "text": "Order 3e9f0c1d… paid: 300.00 withdrawn, balance 700.00",
                    "order_id": "3e9f0c1d2b4a45f6a7b8c9d0e1f2a3b4",
                },
                {
                    "login": "alice",
                    "kind": "payment_failed",
                    "text": "Order 7a6b5c4d… rejected: insufficient funds, price 5000.00, balance 700.00",
                    "order_id": "7a6b5c4d3e2f41a0b9c8d7e6f5a4b3c2",
                },
            ]
        }
    )

    login: str
    kind: Literal["account_created", "payment_succeeded", "payment_failed"]
    text: str
    order_id: str | None = None
