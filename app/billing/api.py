from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from app.billing import service
from app.billing.schemas import Balance, OperationBody, OperationResult
from app.edge.auth import CurrentLogin, require_self
from app.edge.deps import IdempotencyKey, database
from app.edge.fastlane import Call
from app.edge.fields import LOGIN_PATTERN
from app.problems import declared
from app.storage.database import Database
from app.storage.idempotency import check_key

router = APIRouter(tags=["billing"])


BillingDb = Annotated[Database, Depends(database("billing"))]
LoginQuery = Annotated[str, Query(pattern=LOGIN_PATTERN)]
LOGIN = re.compile(LOGIN_PATTERN)


@router.put(
    "/account/operation",
    response_model=OperationResult,
    response_model_by_alias=True,
    responses=declared(401, 403, 404, 409, 413, s409="insufficient funds"),
)
async def account_operation(
    body: OperationBody, db: BillingDb, current: CurrentLogin, idempotency_key: IdempotencyKey = None
) -> OperationResult:
    """Deposit to or withdraw from an account (your own)."""
    require_self(current, body.login)
    key = check_key(idempotency_key)
    return await db.transact(service.apply_operation, body, key)


@router.get(
    "/account/", response_model=Balance, response_model_by_alias=True, responses=declared(401, 403, 404)
)
@router.get("/account", response_model=Balance, response_model_by_alias=True, include_in_schema=False)
async def get_account(db: BillingDb, current: CurrentLogin, login: LoginQuery) -> Balance:
    """An account's balance (your own)."""
    require_self(current, login)
    return await db.read(service.get_balance, login)


async def get_account_fast(call: Call) -> Response | None:
    """The balance in the fast lane (app/edge/fastlane.py): the same checks, the same read."""
    login = call.query("login")
    if login is None or not LOGIN.fullmatch(login):
        return None
    require_self(call.login(), login)
    balance = await call.state.dbs["billing"].read(service.get_balance, login)
    return Response(balance.model_dump_json(by_alias=True), media_type="application/json")


FAST = {("GET", "/account/"): get_account_fast, ("GET", "/account"): get_account_fast}
