from __future__ import annotations

from sqlalchemy import bindparam, select

from app.bus import new_id
from app.notifications.models import notices
from app.notifications.schemas import Message
from app.storage.sql import Reader, Sql
from app.storage.uow import UnitOfWork

# statements are built once and run on the driver (app/storage/sql.py for the measured why)
# event_id is unique: a notice is stored once per event whatever the deliveries
STORE = Sql.insert(notices, "id", "login", "type", "text", "order_id", "event_id", "created_at", ignore=True)
LIST = Sql(
    select(notices.c.id, notices.c.type, notices.c.text, notices.c.order_id, notices.c.created_at)
    .where(notices.c.login == bindparam("b_login"))
    .order_by(notices.c.seq)
    .limit(bindparam("b_limit"))
)


def store_notice(
    uow: UnitOfWork, *, login: str, kind: str, text: str, order_id: str | None, event_id: str
) -> None:
    uow.run(
        STORE,
        {
            "id": new_id(),
            "login": login,
            "type": kind,
            "text": text,
            "order_id": order_id,
            "event_id": event_id,
            "created_at": uow.now,
        },
    )
    uow.note(f'store "{kind}"', login=login)


def list_notices(reader: Reader, login: str, limit: int) -> list[Message]:
    return [
        Message(id=r.id, type=r.type, text=r.text, order_id=r.order_id, created_at=r.created_at)
        for r in reader.all(LIST, {"b_login": login, "b_limit": limit})
    ]
