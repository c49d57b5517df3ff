"""Configuration and database mistakes through the real CLI: one line, exit 2, no traceback.

Each of these printed a 60–190-line traceback (or started anyway) before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner
from sqlalchemy.exc import DBAPIError

from minigate import preflight
from minigate.cli import main
from minigate.preflight import StartRefused, describe_database_error
from tests.ops.process import one_line_refusal, run_cli, run_many

LIVE = {"MINIGATE_MODE": "live", "MINIGATE_API_KEY": "sk_live_refusals",
        "MINIGATE_LATIPAY__USER_ID": "U1", "MINIGATE_LATIPAY__WALLET_ID": "W1",
        "MINIGATE_LATIPAY__API_KEY": "lk_refusals_canary"}


def test_a_port_out_of_range_is_refused() -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "99999"])
    assert result.exit_code == 2
    assert "99999 is not in the range 1<=x<=65535" in result.output
    assert CliRunner().invoke(main, ["sandbox", "--port", "0"]).exit_code == 2


def _pg(database: str, port: int = 5432, user: str = "postgres") -> str:
    return f"postgresql+asyncpg://{user}:pw_canary@127.0.0.1:{port}/{database}"


URL_FORMS = [
    ("postgres://minigate:pw_canary@db.example/minigate",
     "write postgresql+asyncpg://minigate:***@db.example/minigate"),
    ("postgresql://minigate@db.example/minigate",
     "write postgresql+asyncpg://minigate@db.example/minigate"),
    ("sqlite:///./minigate.db", "write sqlite+aiosqlite:///./minigate.db"),
    ("mysql://a@b/c", "which minigate does not support"),
]
AT_CONNECT = [
    ("migrate", _pg("minigate_no_such_db"), "has no database 'minigate_no_such_db'"),
    ("serve", _pg("postgres", user="no_such_user"), "has no user 'no_such_user'"),
    ("migrate", _pg("x", port=1), "nothing accepts connections at 127.0.0.1:1"),
]


def test_database_mistakes(tmp_path: Path) -> None:
    """Each URL form minigate cannot use, and each database that does not answer as
    configured: one line naming the fix, exit 2, the password never shown."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cases = [("migrate", url, expected) for url, expected in URL_FORMS] + AT_CONNECT + [
        ("serve", f"sqlite+aiosqlite:///{blocker}/minigate.db",
         f"cannot open the SQLite file {blocker}/minigate.db")]
    results = run_many(tmp_path, [([command], {"MINIGATE_DATABASE_URL": url,
                                               "MINIGATE_MODE": "sandbox"})
                                  for command, url, _ in cases])
    for (command, url, expected), result in zip(cases, results, strict=True):
        line = one_line_refusal(result)
        assert expected in line, (command, url, line)
        assert "pw_canary" not in line


def test_an_sqlite_file_that_cannot_be_opened_is_refused_before_any_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """aiosqlite's failed connect leaves a worker thread that can post to a closed event
    loop ("Exception in thread …" under the refusal, seen in CI now and then): the file is
    opened with the standard library's driver first, so no engine, and no thread, is made."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    engines: list[str] = []

    def no_engine(url: str, **_: object) -> None:
        engines.append(url)
        raise AssertionError("an engine was made for a file that cannot be opened")

    monkeypatch.setattr(preflight, "make_engine", no_engine)
    with pytest.raises(StartRefused, match="cannot open the SQLite file"):
        asyncio.run(preflight.connect(f"sqlite+aiosqlite:///{blocker}/minigate.db"))
    assert engines == []


def test_a_wrong_password_names_the_fix() -> None:
    # The test server trusts every local user, so the error is made, not provoked.
    orig = Exception("password authentication failed")
    orig.__cause__ = asyncpg.InvalidPasswordError("password authentication failed")
    error = DBAPIError("connect", None, orig)
    line = describe_database_error(error, _pg("minigate"))
    assert line == ("PostgreSQL at 127.0.0.1:5432 refused the password for user 'postgres': "
                    "fix the password in database_url")


def test_live_mode_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    line = one_line_refusal(run_cli(tmp_path, "serve", MINIGATE_DATABASE_URL=url, **LIVE))
    assert "run minigate migrate" in line
    migrated = CliRunner().invoke(main, ["migrate"], env={"MINIGATE_DATABASE_URL": url, **LIVE})
    assert migrated.exit_code == 0, migrated.output
    assert migrated.output.startswith("applied 0001, 0002")
    again = CliRunner().invoke(main, ["migrate"], env={"MINIGATE_DATABASE_URL": url, **LIVE})
    assert "nothing to apply" in again.output
    # The worker refuses the same way.
    fresh = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    assert "run minigate migrate" in _refused("worker", MINIGATE_DATABASE_URL=fresh, **LIVE)


def test_live_mode_refuses_to_start_with_no_provider(tmp_path: Path) -> None:
    line = _refused("serve", MINIGATE_MODE="live", MINIGATE_API_KEY="sk_live_x",
                    MINIGATE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    assert "live mode with no provider configured" in line


def _refused(*args: str, **env: str) -> str:
    """In-process (CliRunner) for speed: the same command, the same one line."""
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


def test_misspelled_keys_name_the_closest_one(tmp_path: Path) -> None:
    config = tmp_path / "minigate.toml"
    config.write_text('databse_url = "sqlite+aiosqlite:///./x.db"\n[latipay]\napikey = "x"\n')
    line = one_line_refusal(run_cli(tmp_path, "serve", "--config", str(config)))
    assert "unknown setting 'databse_url'" in line and "did you mean 'database_url'?" in line
    assert "unknown setting 'latipay.apikey'" in line and "did you mean 'api_key'?" in line
    line = _refused("migrate", MINIGATE_LATIPAY__APIKEY="x")
    assert "MINIGATE_LATIPAY__APIKEY; did you mean 'MINIGATE_LATIPAY__API_KEY'?" in line
    line = _refused("migrate", MINIGATE_ORDER_TTL="60")
    assert "did you mean 'MINIGATE_ORDER_TTL_SECONDS'?" in line


def test_partial_credentials_name_what_is_missing() -> None:
    line = _refused("serve", MINIGATE_LATIPAY__API_KEY="lk_x")
    assert "[latipay] has some credentials but is missing latipay.user_id, " \
           "latipay.wallet_id" in line
    assert "lk_x" not in line
    line = _refused("serve", MINIGATE_WECHATPAY__MCHID="1900000001",
                    MINIGATE_WECHATPAY__APIV3_KEY="k" * 32)
    assert "wechatpay.merchant_serial, wechatpay.private_key (or private_key_path)" in line


def test_a_value_out_of_range_is_one_line() -> None:
    line = _refused("migrate", MINIGATE_ORDER_TTL_SECONDS="5")
    assert "order_ttl_seconds: Input should be greater than or equal to 60 (got '5')" in line


def test_the_database_check_gives_up_within_its_timeout() -> None:
    from minigate.preflight import StartRefused, connect

    async def attempt() -> None:
        # 192.0.2.0/24 is TEST-NET-1, but the port is refused locally first: loopback only.
        await connect("postgresql+asyncpg://u@127.0.0.1:1/x")

    with pytest.raises(StartRefused, match="nothing accepts connections"):
        asyncio.run(attempt())
