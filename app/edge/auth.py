"""Who may see and move whose money.

Passwords are hashed with argon2id (OWASP's m=19 MiB, t=2, p=1: ``AUTH_HASH_MEMORY_KIB``,
``AUTH_HASH_TIME_COST``) off the event loop, at most ``AUTH_HASH_CONCURRENCY`` at once: 200
registrations in parallel would otherwise hold ~3.7 GiB.
``POST /person/login`` answers a signed, expiring token (JWT, HS256 only: ``alg=none`` and every other
algorithm are refused). Every per-user route depends on :data:`CurrentLogin`; a login named in the
query or body must be the token's (403), another user's order is simply not found (404).

The operator endpoints (``/admin/*``, ``/metrics``, every login's ``/flows``) take another credential:
``Authorization: Bearer <OPERATOR_TOKEN>``, compared in constant time. No credentials (or a wrong one)
is 401, a user's token on an operator-only endpoint 403. Both schemes are declared in the OpenAPI
document (:data:`USER_TOKEN`, :data:`OPERATOR_TOKEN`).

``AUTH_MODE=off`` exists for teaching walk-throughs only: every request is then trusted, the operator
endpoints' too, and the start-up log says so loudly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hmac
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
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.observe.context import request_login
from app.problems import Problem

log = logging.getLogger(__name__)

ALGORITHM = "HS256"
# verified tokens remembered (one per active session; ~200 bytes each)
VERIFIED_MAX = 10_000
OPERATOR_TOKEN_FILE = "operator-token"

# The two schemes, for the OpenAPI document (Swagger's "Authorize"). auto_error=False: they never answer
# themselves; the checks below answer problem+json, the same as the fast lane (app/edge/fastlane.py).
USER_TOKEN = HTTPBearer(
    scheme_name="userToken",
    bearerFormat="JWT",
    description="A login's token, from POST /person/login.",
    auto_error=False,
)
OPERATOR_TOKEN = HTTPBearer(
    scheme_name="operatorToken",
    description="OPERATOR_TOKEN: `python -m app operator-token` prints it.",
    auto_error=False,
)


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

    def forget(self, key: str, at: float) -> None:
        """Take back the hit recorded for ``key`` at ``at``: it does not count."""
        hits = self._hits.get(key)
        if hits is not None and at in hits:
            hits.remove(at)

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
        self._operator = operator_token(settings).encode()
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
                "AUTH_MODE=off: EVERY REQUEST IS TRUSTED, the operator endpoints' too. For teaching "
                "walk-throughs only, not production"
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

    def limit_login(self, login: str, address: str) -> float:
        """Count a login attempt (429 over a limit); returns its time, for :meth:`logged_in`. Counted
        before the password is checked, so parallel guesses cannot all slip under the limit."""
        now = time.monotonic()
        wait = max(self.per_login.hit(f"login:{login}", now), self.per_address.hit(f"addr:{address}", now))
        if wait > 0:
            raise TooManyRequests(
                "too many login attempts: wait before trying again",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        return now

    def logged_in(self, login: str, attempt: float) -> None:
        """The attempt counted at ``attempt`` succeeded: the per-login limit is for failures (someone
        guessing this login's password), so a script logging in often is never locked out by itself.
        The per-address limit keeps counting it."""
        self.per_login.forget(f"login:{login}", attempt)

    def issue(self, login: str) -> str:
        request_login.set(login)  # a login request's flow is the login's it authenticated
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
        login = self.login_of(token.strip())
        request_login.set(login)  # whose flow this request is (app/observe/flows)
        return login

    def is_operator(self, header: str) -> bool:
        """Whether ``header`` is ``Bearer <OPERATOR_TOKEN>``; compared in constant time."""
        scheme, _, token = header.partition(" ")
        given = token.strip().encode("latin-1", "replace")  # Starlette decodes headers as latin-1
        return scheme.lower() == "bearer" and hmac.compare_digest(given, self._operator)

    def expires(self, header: str) -> float | None:
        """When the user token of ``header``, already checked by :meth:`bearer`, expires."""
        known = self._verified.get(header.partition(" ")[2].strip())
        return known[1] if known is not None else None

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


def operator_token(settings: Settings) -> str:
    """OPERATOR_TOKEN, else the one kept in ``<DATA_DIR>/operator-token`` (made on first use)."""
    given = settings.operator_token
    token = (
        given.get_secret_value()
        if given is not None
        else _secret_file(settings.data_dir, OPERATOR_TOKEN_FILE, secrets.token_urlsafe(32))
    )
    if len(token) < 32:
        raise ValueError(f"the data dir's {OPERATOR_TOKEN_FILE} file must hold at least 32 characters")
    return token


def known_operator_token(settings: Settings) -> str | None:
    """The operator's token as a client finds it (the bench): OPERATOR_TOKEN, else the data dir's file
    if there is one. Never makes one."""
    if settings.operator_token is not None:
        return settings.operator_token.get_secret_value()
    path = settings.data_dir / OPERATOR_TOKEN_FILE
    return path.read_text().strip() if path.is_file() else None


def _secret_file(data_dir: Path, name: str = "auth-secret", fresh: str | None = None) -> str:
    """A random secret kept in the data dir, so ``make run`` works with no configuration and it
    survives a restart. Several replicas must share one: set AUTH_SECRET (OPERATOR_TOKEN) for them."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # written whole under a temporary name, then linked into place: a crash or a second process
        # never sees a half-written (or empty) secret, and of two processes racing, one secret wins
        tmp = path.with_name(f".{name}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(fresh or secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # unlike a rename, fails when the other process got there first
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: the last rename wins
            os.replace(tmp, path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path.read_text().strip()


Credentials = HTTPAuthorizationCredentials | None


async def current_login(
    request: Request, _declared: Annotated[Credentials, Depends(USER_TOKEN)]
) -> str | None:
    """The login of the Bearer token; None when AUTH_MODE=off (every login is then allowed)."""
    auth: Auth = request.app.state.auth
    return auth.bearer(request.headers.get("authorization", ""))


CurrentLogin = Annotated[str | None, Depends(current_login)]


async def require_operator(
    request: Request, _declared: Annotated[Credentials, Depends(OPERATOR_TOKEN)]
) -> None:
    """The operator's token, or 401; a user's token is 403: it is valid, but not for this door."""
    auth: Auth = request.app.state.auth
    header = request.headers.get("authorization", "")
    if not auth.enabled or auth.is_operator(header):
        return
    try:
        auth.bearer(header)
    except Unauthorized:
        raise Unauthorized(
            "an operator endpoint: it needs Authorization: Bearer <OPERATOR_TOKEN> "
            "(python -m app operator-token prints it)"
        ) from None
    raise Forbidden("an operator endpoint: a user's token does not open it")


Operator = Depends(require_operator)


async def flows_of(
    request: Request,
    _user: Annotated[Credentials, Depends(USER_TOKEN)],
    _operator: Annotated[Credentials, Depends(OPERATOR_TOKEN)],
) -> str | None:
    """Whose flows the caller sees: None for the operator (everyone's), else the token's login."""
    auth: Auth = request.app.state.auth
    header = request.headers.get("authorization", "")
    if not auth.enabled or auth.is_operator(header):
        return None
    return auth.bearer(header)


FlowsOf = Annotated[str | None, Depends(flows_of)]


def require_self(current: str | None, login: str) -> None:
    """403 unless the token is ``login``'s (or auth is off)."""
    if current is not None and current != login:
        raise Forbidden(f"this token is not for login {login!r}: you may only use your own")
