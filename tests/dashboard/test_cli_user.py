"""``minigate dashboard-user NAME`` prints a configuration line that signs in."""

from __future__ import annotations

import tomllib

from argon2 import PasswordHasher
from click.testing import CliRunner

from minigate.cli import main


def test_prints_a_toml_line_with_an_argon2_hash() -> None:
    result = CliRunner().invoke(main, ["dashboard-user", "night shift", "--password-stdin"],
                                input="a long enough password\n")
    assert result.exit_code == 0, result.output
    line = [x for x in result.stdout.splitlines() if not x.startswith("#")][-1]
    users = tomllib.loads(line)
    assert list(users) == ["night shift"]
    assert users["night shift"].startswith("$argon2id$")
    assert PasswordHasher().verify(users["night shift"], "a long enough password")
    assert "a long enough password" not in result.output


def test_refuses_a_short_password_and_a_bad_name() -> None:
    short = CliRunner().invoke(main, ["dashboard-user", "ops", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "12 to 1024" in short.output
    bad = CliRunner().invoke(main, ["dashboard-user", "x" * 65, "--password-stdin"],
                             input="a long enough password\n")
    assert bad.exit_code != 0


def test_a_plain_password_in_the_configuration_is_refused_at_start() -> None:
    import pytest

    from minigate.app import Runtime, create_app
    from minigate.config import load_settings

    settings = load_settings(mode="sandbox", database_url="sqlite+aiosqlite:///:memory:",
                             dashboard={"users": {"ops": "hunter2hunter2"}})
    with pytest.raises(ValueError, match="argon2 hash") as refused:
        create_app(settings, Runtime(settings))
    assert "hunter2" not in str(refused.value)
