from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from app.edge.auth import CurrentLogin, require_self
from app.edge.deps import database
from app.edge.fastlane import Call
from app.edge.fields import LOGIN_PATTERN
from app.notifications import service
from app.notifications.schemas import Notices
from app.problems import declared
from app.storage.database import Database

router = APIRouter(tags=["notifications"])


NotificationsDb = Annotated[Database, Depends(database("notifications"))]
LOGIN = re.compile(LOGIN_PATTERN)
LIMIT = re.compile(r"[0-9]{1,4}")


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


async def get_notices_fast(call: Call) -> Response | None:
    """The notices in the fast lane (app/edge/fastlane.py): the same checks, the same read."""
    login, limit = call.query("login"), call.query("limit")
    if login is None or not LOGIN.fullmatch(login):
        return None
    if limit is None:
        count = 100
    elif LIMIT.fullmatch(limit) and 1 <= int(limit) <= 1000:
        count = int(limit)
    else:
        return None
    require_self(call.login(), login)
    messages = await call.state.dbs["notifications"].read(service.list_notices, login, count)
    return Response(
        Notices(login=login, messages=messages).model_dump_json(by_alias=True), media_type="application/json"
    )


FAST = {("GET", "/notice/notices/"): get_notices_fast, ("GET", "/notice/notices"): get_notices_fast}
