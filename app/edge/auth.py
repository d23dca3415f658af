"""Who may see and move whose money.

Passwords are hashed with argon2id (OWASP's m=19 MiB, t=2, p=1: ``AUTH_HASH_MEMORY_KIB``,
``AUTH_HASH_TIME_COST``) off the event loop, at most ``AUTH_HASH_CONCURRENCY`` at once: 200
registrations in parallel would otherwise hold ~3.7 GiB.
``POST /person/login`` answers a signed, expiring token (JWT, HS256 only: ``alg=none`` and every other
algorithm are refused). Every per-user route depends on :data:`CurrentLogin`; a login named in the
query or body must be the token's (403), another user's order is simply not found (404).

``AUTH_MODE=off`` exists for teaching walk-throughs only: every request is then trusted, and the
start-up log says so loudly.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import secrets
import sys
import time
from collections import deque
from pathlib import Path
from typing import Annotated

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, Request

from app.config import Settings
from app.problems import Problem

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# verified tokens remembered (one per active session; ~200 bytes each)
VERIFIED_MAX = 10_000


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="eventcollab"'})


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"


class RateLimit:
    """At most ``limit`` hits per key in any ``window`` seconds (a sliding log; memory is bounded by
    the limit per key, and keys idle for a window are forgotten)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, now: float | None = None) -> float:
        """Record a hit; return 0 if allowed, else the seconds to wait (nothing is recorded then)."""
        now = time.monotonic() if now is None else now
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return hits[0] + self.window - now
        hits.append(now)
        if len(self._hits) > 10_000:
            self._forget(now)
        return 0.0

    def _forget(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]


def _unmap_large_blocks() -> None:
    """Have glibc map argon2's 19 MiB work areas and unmap them when freed. By default it raises its
    mmap threshold after the first such free and keeps later ones in the heap for good (measured:
    64 sign-ups left the server at 195 MiB RSS; with a fixed 1 MiB threshold, 101 MiB)."""
    if sys.platform != "linux":
        return
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 20)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to tune


M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>


class Auth:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth_mode != "off"
        self.ttl = settings.token_ttl_seconds
        given = settings.auth_secret
        self.secret = given.get_secret_value() if given is not None else _secret_file(settings.data_dir)
        if len(self.secret) < 32:
            raise ValueError(
                "AUTH_SECRET (or the data dir's auth-secret file) must be at least 32 characters"
            )
        # OWASP's argon2id minimum (m=19 MiB, t=2, p=1) by default; tests may ask for less
        _unmap_large_blocks()
        self.hasher = PasswordHasher(
            time_cost=settings.auth_hash_time_cost,
            memory_cost=settings.auth_hash_memory_kib,
            parallelism=1,
        )
        self._slots = asyncio.Semaphore(settings.auth_hash_concurrency)
        self.per_login = RateLimit(settings.login_rate_per_login, 60.0)
        self.per_address = RateLimit(settings.login_rate_per_address, 60.0)
        # token -> (login, expiry) of tokens whose signature and claims were checked
        self._verified: dict[str, tuple[str, float]] = {}
        # a hash to verify against for an unknown login, so both answers take the same time
        self._decoy = self.hasher.hash(secrets.token_hex(16))
        if not self.enabled:
            log.warning(
                "AUTH_MODE=off: EVERY REQUEST IS TRUSTED. For teaching walk-throughs only, not production"
            )

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(self.hasher.hash, password)

    async def check_password(self, stored: str | None, password: str) -> bool:
        async with self._slots:
            try:
                return await asyncio.to_thread(self.hasher.verify, stored or self._decoy, password) and bool(
                    stored
                )
            except (VerificationError, InvalidHashError):
                return False

    def limit_login(self, login: str, address: str) -> None:
        wait = max(self.per_login.hit(f"login:{login}"), self.per_address.hit(f"addr:{address}"))
        if wait > 0:
            raise TooManyRequests(
                "too many login attempts: wait before trying again",
                headers={"Retry-After": str(int(wait) + 1)},
            )

    def issue(self, login: str) -> str:
        now = int(time.time())
        claims = {"sub": login, "iat": now, "exp": now + self.ttl, "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.secret, algorithm=ALGORITHM)

    def bearer(self, header: str) -> str | None:
        """The login of an ``Authorization: Bearer`` header's token; None when AUTH_MODE=off (every
        login is then allowed). A token is valid by its signature and expiry alone: no read of person's
        database (there is no account deletion to revoke against; if one is added, revocation travels
        as an event)."""
        if not self.enabled:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized(
                "this endpoint needs an Authorization: Bearer <token> header (POST /person/login)"
            )
        return self.login_of(token.strip())

    def login_of(self, token: str) -> str:
        """The token's login. A verified token is remembered until it expires: checking the signature
        cost ~10 % of the server's CPU under load (pyjwt, py-spy), a dict hit costs nothing. Only a
        token that passed every check is remembered, and only its exact bytes match again."""
        known = self._verified.get(token)
        if known is not None:
            login, expires = known
            if time.time() < expires:
                return login
            del self._verified[token]
            raise Unauthorized("the token has expired: log in again")
        login, expires = self._verify(token)
        if len(self._verified) >= VERIFIED_MAX:
            # bounded: forget the oldest (a dict keeps insertion order); it is verified again if it comes
            del self._verified[next(iter(self._verified))]
        self._verified[token] = (login, expires)
        return login

    def _verify(self, token: str) -> tuple[str, float]:
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "iat"]}
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired: log in again") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is not valid") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthorized("the token names no user")
        return sub, float(claims["exp"])


def _secret_file(data_dir: Path) -> str:
    """A random secret kept in the data dir, so ``make run`` works with no configuration and tokens
    survive a restart. Several replicas must share one: set AUTH_SECRET for them."""
    path = data_dir / "auth-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # written whole under a temporary name, then renamed: a crash or a second process never
        # sees a half-written (or empty) secret
        tmp = path.with_name(f".auth-secret.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(48))
        os.replace(tmp, path)
    return path.read_text().strip()


async def current_login(request: Request) -> str | None:
    """The login of the Bearer token; None when AUTH_MODE=off (every login is then allowed)."""
    auth: Auth = request.app.state.auth
    return auth.bearer(request.headers.get("authorization", ""))


CurrentLogin = Annotated[str | None, Depends(current_login)]


def require_self(current: str | None, login: str) -> None:
    """403 unless the token is ``login``'s (or auth is off)."""
    if current is not None and current != login:
        raise Forbidden(f"this token is not for login {login!r}: you may only use your own")
