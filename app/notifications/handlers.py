from __future__ import annotations

from app.bus import Consumed, Envelope
from app.messaging.inbox import ModuleHandler
from app.notifications import service
from app.storage.uow import UnitOfWork


class NotificationRequested(Consumed):
    login: str
    kind: str
    text: str
    order_id: str | None = None


def on_notification_requested(uow: UnitOfWork, event: Envelope) -> None:
    note = NotificationRequested.model_validate(event.data)
    service.store_notice(
        uow, login=note.login, kind=note.kind, text=note.text, order_id=note.order_id, event_id=event.id
    )


SUBSCRIPTIONS: dict[str, ModuleHandler] = {
    "billing.notification_requested.v1": on_notification_requested,
}
