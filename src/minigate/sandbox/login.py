"""Simulated ``jscode2session`` and ``wx.login``: single-use codes that expire in 5 minutes.

Error behaviour as documented (providers.md §5): 40029 for an unknown, used or expired code
(and for a wrong AppID/AppSecret), 45011 past 100 logins a minute for one user, 40226 for a
blocked user (sandbox users whose name starts with ``blocked``), -1 when a fault is
injected.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import deque
from datetime import datetime, timedelta

from minigate.clock import Clock

CODE_TTL = timedelta(minutes=5)
PER_MINUTE = 100
WINDOW = timedelta(minutes=1)


class LoginSim:
    """What it keeps is plain data (strings, datetimes, tuples of them), and what only
    matters for a while is dropped when that while is over: a sandbox that serves many
    logins must not make every full garbage collection walk one object per login."""

    def __init__(self, clock: Clock, apps: dict[str, str]) -> None:
        self.clock = clock
        self.apps = dict(apps)  # appid -> secret
        #: Codes not yet used, in the order they were issued, so expired ones are pruned
        #: from the front. A used code is removed: it is then as unknown as one never issued.
        self._codes: dict[str, tuple[str, str, datetime]] = {}
        #: (appid, openid) of every user seen -> when they last logged in, oldest first
        #: (``retention`` forgets those not seen for its ``keep``).
        self._known: dict[tuple[str, str], datetime] = {}
        #: Each user's logins in the last minute (for 45011); a user with none is dropped.
        self._recent: dict[str, deque[datetime]] = {}
        self._windows_swept_at: datetime | None = None
        self.fail_next = 0
        #: The latest session_keys handed out, so tests can check none of them leaks.
        self.issued_session_keys: deque[str] = deque(maxlen=10_000)

    def openid_for(self, appid: str, user: str) -> str:
        """A user's stable openid within one mini program (different per AppID)."""
        digest = hashlib.sha256(f"{appid}:{user}".encode()).digest()
        return "o" + base64.urlsafe_b64encode(digest).decode()[:27]

    def known_openid(self, appid: str, openid: str) -> bool:
        """Has a user of this mini program logged in (so the openid is a real one)?"""
        return (appid, openid) in self._known

    def issue_code(self, user: str, appid: str) -> str:
        now = self.clock.now()
        self._prune(now)
        code = secrets.token_hex(16)
        # A plain tuple of strings and a datetime: the collector stops tracking it.
        self._codes[code] = (user, appid, now)
        key = (appid, self.openid_for(appid, user))
        self._known.pop(key, None)  # to the end: the dict stays in order of last login
        self._known[key] = now
        return code

    def forget_users(self, cutoff: datetime | None, limit: int | None) -> int:
        """Forget users whose last login was before ``cutoff``, and the least recently
        seen beyond ``limit`` (``None``: no such limit); returns how many went."""
        over = len(self._known) - limit if limit is not None else 0
        stale: list[tuple[str, str]] = []
        for key, seen in self._known.items():
            if len(stale) >= over and (cutoff is None or seen >= cutoff):
                break
            stale.append(key)
        for key in stale:
            del self._known[key]
        return len(stale)

    def _prune(self, now: datetime) -> None:
        """Forget codes past their lifetime (a long-running sandbox must not grow forever)."""
        while self._codes:
            oldest = next(iter(self._codes))
            if now - self._codes[oldest][2] <= CODE_TTL:
                return
            del self._codes[oldest]

    def _sweep_windows(self, now: datetime) -> None:
        """Once a minute, forget the users with no login in the last minute."""
        if self._windows_swept_at is not None and now - self._windows_swept_at < WINDOW:
            return
        self._windows_swept_at = now
        stale = [user for user, window in self._recent.items()
                 if not window or now - window[-1] > WINDOW]
        for user in stale:
            del self._recent[user]

    def jscode2session(self, appid: str, secret: str, code: str) -> dict[str, object]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return {"errcode": -1, "errmsg": "system error"}
        expected = self.apps.get(appid)
        if expected is None or not hmac.compare_digest(expected, secret):
            return {"errcode": 40029, "errmsg": "invalid code (appid or secret mismatch)"}
        entry = self._codes.get(code)
        now = self.clock.now()
        if entry is None:
            return {"errcode": 40029, "errmsg": "invalid code"}
        user, code_appid, issued_at = entry
        if code_appid != appid or now - issued_at > CODE_TTL:
            return {"errcode": 40029, "errmsg": "invalid code"}
        del self._codes[code]  # single use
        if user.startswith("blocked"):
            return {"errcode": 40226, "errmsg": "code blocked"}
        self._sweep_windows(now)
        window = self._recent.setdefault(user, deque())
        while window and now - window[0] > WINDOW:
            window.popleft()
        if len(window) >= PER_MINUTE:
            return {"errcode": 45011, "errmsg": "api minute-quota reach limit  mustslower  retry next minute"}
        window.append(now)
        session_key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.issued_session_keys.append(session_key)
        return {"openid": self.openid_for(appid, user), "session_key": session_key}
