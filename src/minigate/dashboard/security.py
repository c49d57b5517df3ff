"""Sign-in, sessions, CSRF and response headers of the dashboard.

* Passwords are argon2 hashes in the configuration (``minigate dashboard-user NAME`` makes
  one); verifying runs in a thread, at most two at a time, so a flood of sign-ins cannot
  take the event loop or every core. An unknown name costs the same work as a known one.
* The session is a cookie signed with itsdangerous (HMAC): ``{user, csrf token, session
  id}``. It is HttpOnly, SameSite=Strict, limited to ``/dashboard`` and Secure outside the
  sandbox. Signing out forgets the session id in this process, so a copied cookie is dead
  too (until it would have expired anyway).
* Every form carries the session's CSRF token; a POST without it changes nothing.
* A failed sign-in waits before it answers: ``signin_delay_seconds``, doubled for every
  recent failure of that name or that address, at most 16 times, with a bounded memory.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE = "minigate_dashboard"
#: Sign-in names and passwords longer than this are refused before any work is done.
MAX_NAME, MAX_PASSWORD = 64, 1024

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash (with its own salt and parameters) for the configuration."""
    return _hasher.hash(password)


@dataclass(frozen=True)
class Session:
    user: str
    csrf: str
    sid: str

    @property
    def signed_in(self) -> bool:
        return bool(self.user)


class Sessions:
    """Signs and reads the session cookie; remembers the sessions signed out of."""

    def __init__(self, secret: str, max_age_seconds: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="minigate.dashboard.session")
        self.max_age = max_age_seconds
        self._ended: OrderedDict[str, float] = OrderedDict()

    def new(self, user: str = "") -> Session:
        return Session(user, secrets.token_urlsafe(24), secrets.token_urlsafe(16))

    def dump(self, session: Session) -> str:
        return self._serializer.dumps({"u": session.user, "c": session.csrf, "s": session.sid})

    def load(self, cookie: str | None) -> Session | None:
        if not cookie or len(cookie) > 1024:
            return None
        try:
            data: Any = self._serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in "ucs"):
            return None
        if data["s"] in self._ended:
            return None
        return Session(data["u"], data["c"], data["s"])

    def end(self, session: Session) -> None:
        now = time.monotonic()
        self._ended[session.sid] = now + self.max_age
        while self._ended and (next(iter(self._ended.values())) < now or len(self._ended) > 100_000):
            self._ended.popitem(last=False)


def csrf_ok(session: Session | None, given: str | None) -> bool:
    if session is None or not given:
        return False
    return hmac.compare_digest(session.csrf.encode(), given.encode())


class Passwords:
    """Checks a name and password against the configured argon2 hashes."""

    def __init__(self, users: dict[str, str], *, api_key: str | None = None) -> None:
        for name, stored in users.items():
            # Checked here, not by pydantic, whose error would echo the value: a plain
            # password pasted where its hash belongs.
            if not 1 <= len(name) <= MAX_NAME or not stored.startswith("$argon2"):
                raise ValueError(f"[dashboard] users: {name[:MAX_NAME]!r} must map to an "
                                 "argon2 hash from 'minigate dashboard-user NAME'")
        self.users = dict(users)
        #: In sandbox mode the merchant API key also signs in (as ``merchant``).
        self.api_key = api_key
        self._dummy: str | None = None
        self._gate = asyncio.Semaphore(2)

    async def check(self, name: str, password: str) -> str | None:
        """The signed-in user's name, or None."""
        if not password or len(name) > MAX_NAME or len(password) > MAX_PASSWORD:
            return None
        if self.api_key and hmac.compare_digest(password.encode(), self.api_key.encode()):
            return "merchant"
        stored = self.users.get(name)
        if self._dummy is None:
            self._dummy = await asyncio.to_thread(hash_password, secrets.token_urlsafe(16))
        async with self._gate:
            ok = await asyncio.to_thread(_verify, stored or self._dummy, password)
        return name if ok and stored is not None else None


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


class SigninThrottle:
    """Recent sign-in failures per name and per address, and the wait they earn."""

    WINDOW = 15 * 60.0
    MAX_KEYS = 10_000
    MAX_DOUBLINGS = 4  # 1, 2, 4, 8, 16 times the base delay

    def __init__(self, base_delay: float) -> None:
        self.base_delay = base_delay
        self._failures: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _count(self, key: str, now: float) -> int:
        found = self._failures.get(key)
        if found is None or now - found[1] > self.WINDOW:
            return 0
        return found[0]

    def failed(self, name: str, address: str) -> float:
        """Record a failure; returns how long to wait before answering it."""
        now = time.monotonic()
        worst = 0
        for key in (f"name:{name}", f"addr:{address}"):
            count = self._count(key, now) + 1
            self._failures[key] = (count, now)
            self._failures.move_to_end(key)
            worst = max(worst, count)
        while len(self._failures) > self.MAX_KEYS:
            self._failures.popitem(last=False)
        return float(self.base_delay * 2 ** min(worst - 1, self.MAX_DOUBLINGS))

    def succeeded(self, name: str) -> None:
        self._failures.pop(f"name:{name}", None)


#: The Content-Security-Policy: our own scripts and styles only, nothing inline, no frames.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


class SecurityHeaders:
    """Adds the headers above to every dashboard response; pages are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
