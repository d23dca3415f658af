from __future__ import annotations

from sqlalchemy import Connection, select

from app.bus import new_id, utcnow
from app.notifications.models import notices
from app.notifications.schemas import Message
from app.storage.database import UnitOfWork


def store_notice(
    uow: UnitOfWork, *, login: str, kind: str, text: str, order_id: str | None, event_id: str
) -> None:
    uow.conn.execute(
        uow.insert_ignore(notices),
        {
            "id": new_id(),
            "login": login,
            "type": kind,
            "text": text,
            "order_id": order_id,
            "event_id": event_id,
            "created_at": utcnow(),
        },
    )


def list_notices(conn: Connection, login: str, limit: int) -> list[Message]:
    rows = conn.execute(
        select(notices.c.id, notices.c.type, notices.c.text, notices.c.order_id, notices.c.created_at)
        .where(notices.c.login == login)
        .order_by(notices.c.seq)
        .limit(limit)
    )
    return [
        Message(id=r.id, type=r.type, text=r.text, order_id=r.order_id, created_at=r.created_at) for r in rows
    ]
