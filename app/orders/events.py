from __future__ import annotations

from typing import ClassVar

from app.bus import Event


class PaymentRequested(Event):
    TYPE: ClassVar[str] = "orders.payment_requested.v1"

    order_id: str
    login: str
    amount: int
