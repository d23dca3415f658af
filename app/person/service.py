from __future__ import annotations

from sqlalchemy import bindparam, select

from app.bus import new_id
from app.person.events import PersonRegistered
from app.person.models import Person
from app.person.schemas import Register
from app.problems import Conflict, NotFound
from app.storage.sql import Reader, Sql
from app.storage.uow import UnitOfWork

persons = Person.__table__  # type: ignore[attr-defined]

# statements are built once and run on the driver (app/storage/sql.py for the measured why)
REGISTER = Sql.insert(persons, ignore=True)
PASSWORD_HASH = Sql(select(persons.c.password_hash).where(persons.c.login == bindparam("b_login")))
PROFILE = Sql(select(persons).where(persons.c.login == bindparam("b_login")))


def register(uow: UnitOfWork, body: Register, password_hash: str) -> Person:
    person = Person(
        id=new_id(), created_at=uow.now, password_hash=password_hash, **body.model_dump(exclude={"password"})
    )
    # the unique login decides; no read-then-insert race between two registrations
    if not uow.run(REGISTER, person.model_dump()):
        raise LoginTaken(f"login {body.login!r} is already registered")
    uow.emit(
        PersonRegistered(
            person_id=person.id,
            login=person.login,
            email=person.email,
            first_name=person.first_name,
            last_name=person.last_name,
        ),
        subject=person.login,
    )
    uow.note(f"register {person.login}", login=person.login)
    return person


def password_hash(reader: Reader, login: str) -> str | None:
    """The stored hash, or None for an unknown login (the caller verifies against a decoy then)."""
    row = reader.first(PASSWORD_HASH, {"b_login": login})
    return None if row is None else row[0]


def get_person(reader: Reader, login: str) -> Person:
    row = reader.first(PROFILE, {"b_login": login})
    if row is None:
        raise PersonNotFound(f"no person with login {login!r}")
    return Person.model_validate(row._asdict())


class LoginTaken(Conflict):
    slug, title = "login-taken", "Login taken"


class PersonNotFound(NotFound):
    slug, title = "person-not-found", "Person not found"
