from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from app.edge.auth import Auth, CurrentLogin, Unauthorized, require_self
from app.edge.deps import database
from app.edge.fields import LOGIN_PATTERN
from app.person import service
from app.person.schemas import Credentials, Profile, Register, Token
from app.problems import declared
from app.storage.database import Database

router = APIRouter(tags=["person"])


async def _auth(request: Request) -> Auth:
    auth: Auth = request.app.state.auth
    return auth


PersonDb = Annotated[Database, Depends(database("person"))]
AppAuth = Annotated[Auth, Depends(_auth)]


@router.post(
    "/person/register",
    response_model=Profile,
    response_model_by_alias=True,
    responses=declared(409, 413, s409="the login is taken"),
)
async def register(body: Register, db: PersonDb, auth: AppAuth) -> Profile:
    """Register a person; Billing opens their account when it hears of it."""
    password_hash = await auth.hash(body.password)
    return Profile.model_validate(await db.transact(service.register, body, password_hash))


@router.post(
    "/person/login",
    response_model=Token,
    response_model_by_alias=True,
    responses=declared(401, 413, 429, s401="wrong login or password"),
)
async def login(body: Credentials, request: Request, db: PersonDb, auth: AppAuth) -> Token:
    """Exchange a login and password for a Bearer token."""
    attempt = auth.limit_login(body.login, request.client.host if request.client else "unknown")
    stored = await db.read(service.password_hash, body.login)
    # one answer for an unknown login and a wrong password, after the same work
    if not await auth.check_password(stored, body.password):
        raise Unauthorized("wrong login or password")
    auth.logged_in(body.login, attempt)
    return Token(access_token=auth.issue(body.login), expires_in=auth.ttl)


@router.get(
    "/person/persons/{login}",
    response_model=Profile,
    response_model_by_alias=True,
    responses=declared(401, 403, 404),
)
async def get_person(
    login: Annotated[str, Path(pattern=LOGIN_PATTERN)], db: PersonDb, current: CurrentLogin
) -> Profile:
    """A person's profile (your own)."""
    require_self(current, login)
    return Profile.model_validate(await db.read(service.get_person, login))
