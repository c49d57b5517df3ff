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
from dataclasses import dataclass
from datetime import datetime, timedelta

from minigate.clock import Clock

CODE_TTL = timedelta(minutes=5)
PER_MINUTE = 100


@dataclass
class _Code:
    user: str
    appid: str
    issued_at: datetime
    used: bool = False


class LoginSim:
    def __init__(self, clock: Clock, apps: dict[str, str]) -> None:
        self.clock = clock
        self.apps = dict(apps)  # appid -> secret
        #: Codes in the order they were issued, so expired ones are pruned from the front.
        self._codes: dict[str, _Code] = {}
        self._known: set[tuple[str, str]] = set()  # (appid, openid) of every user seen
        self._recent: dict[str, deque[datetime]] = {}
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
        self._codes[code] = _Code(user, appid, now)
        self._known.add((appid, self.openid_for(appid, user)))
        return code

    def _prune(self, now: datetime) -> None:
        """Forget codes past their lifetime (a long-running sandbox must not grow forever)."""
        while self._codes:
            oldest = next(iter(self._codes))
            if now - self._codes[oldest].issued_at <= CODE_TTL:
                return
            del self._codes[oldest]

    def jscode2session(self, appid: str, secret: str, code: str) -> dict[str, object]:
        if self.fail_next > 0:
            self.fail_next -= 1
            return {"errcode": -1, "errmsg": "system error"}
        expected = self.apps.get(appid)
        if expected is None or not hmac.compare_digest(expected, secret):
            return {"errcode": 40029, "errmsg": "invalid code (appid or secret mismatch)"}
        entry = self._codes.get(code)
        now = self.clock.now()
        if entry is None or entry.used or entry.appid != appid or now - entry.issued_at > CODE_TTL:
            return {"errcode": 40029, "errmsg": "invalid code"}
        entry.used = True
        if entry.user.startswith("blocked"):
            return {"errcode": 40226, "errmsg": "code blocked"}
        window = self._recent.setdefault(entry.user, deque())
        while window and now - window[0] > timedelta(minutes=1):
            window.popleft()
        if len(window) >= PER_MINUTE:
            return {"errcode": 45011, "errmsg": "api minute-quota reach limit  mustslower  retry next minute"}
        window.append(now)
        session_key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.issued_session_keys.append(session_key)
        return {"openid": self.openid_for(appid, entry.user), "session_key": session_key}
