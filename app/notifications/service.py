from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from app.bus import new_id, utcnow
from app.db import UnitOfWork
from app.notifications.models import notices
from app.notifications.schemas import Message


async def store_notice(
    uow: UnitOfWork, *, login: str, kind: str, text: str, order_id: str | None, event_id: str
) -> None:
    await uow.conn.execute(
        uow.insert_ignore(notices).values(
            id=new_id(),
            login=login,
            type=kind,
            text=text,
            order_id=order_id,
            event_id=event_id,
            created_at=utcnow(),
        )
    )


async def list_notices(conn: AsyncConnection, login: str, limit: int) -> list[Message]:
    rows = await conn.execute(
        select(notices.c.id, notices.c.type, notices.c.text, notices.c.order_id, notices.c.created_at)
        .where(notices.c.login == login)
        .order_by(notices.c.seq)
        .limit(limit)
    )
    return [
        Message(id=r.id, type=r.type, text=r.text, order_id=r.order_id, created_at=r.created_at) for r in rows
    ]
