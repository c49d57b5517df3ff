"""The collector's setting a server process takes once started (``minigate.app.settle_heap``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from minigate.app import Runtime, create_app
from minigate.config import load_settings


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's own setting, as it was, afterwards."""
    before = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


@pytest.mark.usefixtures("collector")
async def test_the_lifespan_freezes_what_exists_and_sets_the_threshold(tmp_path: Path) -> None:
    _, middle, oldest = gc.get_threshold()
    settings = load_settings(mode="sandbox", gc_threshold=4321,
                             database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    app = create_app(settings, Runtime(settings, run_jobs=False))
    gc.unfreeze()
    async with app.router.lifespan_context(app):
        assert gc.get_threshold() == (4321, middle, oldest)
        assert gc.get_freeze_count() > 10_000  # the modules and the app, at least


def test_the_default_is_ten_times_pythons_and_bounded() -> None:
    assert load_settings().gc_threshold == 7000
    for wrong in (0, 99, 1_000_001):
        with pytest.raises(ValidationError, match="gc_threshold"):
            load_settings(gc_threshold=wrong)
