from __future__ import annotations

from typing import ClassVar

from pydantic import ConfigDict

from app.bus import Event


class PaymentRequested(Event):
    TYPE: ClassVar[str] = "orders.payment_requested.v1"
    # payloads as emitted (model_dump): the contract test parses each with every consumer's model
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"order_id": "3e9f0c1d2b4a45f6a7b8c9d0e1f2a3b4", "login": "alice", "amount": 30000},
            ]
        }
    )

    order_id: str
    login: str
    amount: int
