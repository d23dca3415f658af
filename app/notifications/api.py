from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.edge.auth import CurrentLogin, require_self
from app.edge.deps import database
from app.edge.fields import LOGIN_PATTERN
from app.notifications import service
from app.notifications.schemas import Notices
from app.problems import declared
from app.storage.database import Database

router = APIRouter(tags=["notifications"])


NotificationsDb = Annotated[Database, Depends(database("notifications"))]


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
    return Notices(login=login, messages=await db.read(service.list_notices, login, limit))
