from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from app.auth import CurrentLogin, require_self
from app.db import Database
from app.fields import LOGIN_PATTERN
from app.notifications import service
from app.notifications.schemas import Notices
from app.problems import declared

router = APIRouter(tags=["notifications"])


async def _db(request: Request) -> Database:
    db: Database = request.app.state.dbs["notifications"]
    return db


NotificationsDb = Annotated[Database, Depends(_db)]


@router.get(
    "/notice/notices/", response_model=Notices, response_model_by_alias=True, responses=declared(401, 403)
)
@router.get("/notice/notices", response_model=Notices, response_model_by_alias=True, include_in_schema=False)
async def get_notices(
    db: NotificationsDb,
    current: CurrentLogin,
    login: Annotated[str, Query(pattern=LOGIN_PATTERN)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Notices:
    """A login's messages, oldest first (an unknown login has none)."""
    require_self(current, login)
    return Notices(login=login, messages=await db.query(service.list_notices, login, limit))
