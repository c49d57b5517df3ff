"""``UTCDateTime``'s SQLite binding: the text SQLAlchemy's own processors would store."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.dialects import postgresql, sqlite

from minigate.store import hot
from minigate.store.models import UTCDateTime, _sqlite_text


def _sqlalchemys(dialect: Any) -> Callable[[datetime | None], Any]:
    """What SQLAlchemy would do: ``process_bind_param``, then the SQLite dialect's own
    ``DATETIME`` formatting."""
    formatting = sqlite.DATETIME().bind_processor(dialect)
    assert formatting is not None

    def process(value: datetime | None) -> Any:
        return formatting(UTCDateTime().process_bind_param(value, dialect))

    return process


def test_sqlite_text_is_sqlalchemys_text() -> None:
    dialect = sqlite.dialect()
    ours, theirs = UTCDateTime().bind_processor(dialect), _sqlalchemys(dialect)
    assert ours is _sqlite_text
    rng = random.Random(16)
    zones = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-9, minutes=-30)),
             ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")]
    moments = [datetime(2026, 11, 30, 11, 0, 0, 0, UTC),  # no microseconds: still 6 digits
               datetime(1, 1, 1, 12, 0, 0, 1, UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC),
               datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York"))]
    for _ in range(2_000):
        moments.append(datetime(2000, 1, 1, tzinfo=UTC).astimezone(rng.choice(zones))
                       + timedelta(seconds=rng.randrange(2_000_000_000),
                                   microseconds=rng.randrange(1_000_000)))
    for moment in moments:
        assert ours(moment) == theirs(moment), moment
    assert ours(None) is None
    assert ours(datetime(2026, 11, 30, 11, 0, 0, 123456, UTC)) == "2026-11-30 11:00:00.123456"
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 11, 30))  # noqa: DTZ001 - the value it must refuse


def test_other_dialects_keep_sqlalchemys_processor() -> None:
    processor = UTCDateTime().bind_processor(postgresql.asyncpg.dialect())
    moment = datetime(2026, 11, 30, 19, 0, tzinfo=timezone(timedelta(hours=8)))
    converted = processor(moment) if processor is not None else UTCDateTime().process_bind_param(
        moment, None)
    assert converted == moment and converted.tzinfo is UTC


def test_the_hot_paths_statements_bind_with_it() -> None:
    binds = {name: process for name, process, _ in hot.INSERT_ORDER.prepared(sqlite.dialect()).binds}
    assert binds["created_at"] is _sqlite_text and binds["expires_at"] is _sqlite_text
