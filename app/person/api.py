from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from app.db import Database
from app.fields import LOGIN_PATTERN
from app.person import service
from app.person.schemas import Profile, Register

router = APIRouter(tags=["person"])


async def _db(request: Request) -> Database:
    db: Database = request.app.state.dbs["person"]
    return db


PersonDb = Annotated[Database, Depends(_db)]


@router.post("/person/register", response_model=Profile, response_model_by_alias=True)
async def register(body: Register, db: PersonDb) -> Profile:
    """Register a person; Billing opens their account when it hears of it."""
    return Profile.model_validate(await db.transact(service.register, body))


@router.get("/person/persons/{login}", response_model=Profile, response_model_by_alias=True)
async def get_person(login: Annotated[str, Path(pattern=LOGIN_PATTERN)], db: PersonDb) -> Profile:
    """A person's profile."""
    return Profile.model_validate(await db.query(service.get_person, login))
