from __future__ import annotations

from sqlalchemy import Connection, select

from app.bus import new_id, utcnow
from app.person.events import PersonRegistered
from app.person.models import Person
from app.person.schemas import Register
from app.problems import Conflict, NotFound
from app.storage.database import UnitOfWork

persons = Person.__table__  # type: ignore[attr-defined]


def register(uow: UnitOfWork, body: Register, password_hash: str) -> Person:
    person = Person(
        id=new_id(), created_at=utcnow(), password_hash=password_hash, **body.model_dump(exclude={"password"})
    )
    # the unique login decides; no read-then-insert race between two registrations
    inserted = uow.conn.execute(uow.insert_ignore(persons), person.model_dump())
    if not inserted.rowcount:
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
    return person


def password_hash(conn: Connection, login: str) -> str | None:
    """The stored hash, or None for an unknown login (the caller verifies against a decoy then)."""
    row = conn.execute(select(persons.c.password_hash).where(persons.c.login == login)).first()
    return None if row is None else row[0]


def exists(conn: Connection, login: str) -> bool:
    return conn.execute(select(persons.c.id).where(persons.c.login == login)).first() is not None


def get_person(conn: Connection, login: str) -> Person:
    row = conn.execute(select(persons).where(persons.c.login == login)).mappings().first()
    if row is None:
        raise PersonNotFound(f"no person with login {login!r}")
    return Person.model_validate(dict(row))


class LoginTaken(Conflict):
    slug, title = "login-taken", "Login taken"


class PersonNotFound(NotFound):
    slug, title = "person-not-found", "Person not found"
