"""The ``minigate`` command: serve | demo | worker | migrate | check | sandbox | dashboard-user.

A configuration or database mistake ends a command with one line that says what to change
and exit status 2 (:class:`Refused`), never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
import uvicorn
from pydantic import SecretStr, ValidationError

from minigate.config import ConfigError, Settings, load_settings, masked_url, validation_message
from minigate.logs import configure_logging

if TYPE_CHECKING:
    from minigate.sandbox.keystore import SandboxCredentials

T = TypeVar("T")

#: Exit status of a command refused because of the configuration or the database.
CONFIG_EXIT = 2


class Refused(click.ClickException):
    """One line on stderr (``Error: …``), exit status 2."""

    exit_code = CONFIG_EXIT


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except FileNotFoundError as exc:
        raise Refused(str(exc)) from None
    except ValidationError as exc:
        raise Refused(f"invalid configuration: {validation_message(exc)}") from None
    except ConfigError as exc:
        raise Refused(f"invalid configuration: {exc}") from None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, with a refusal from the checks turned into one line."""
    try:
        return asyncio.run(coroutine)
    except ConfigError as exc:
        raise Refused(str(exc)) from None


def _logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


config_option = click.option("--config", "config", type=click.Path(path_type=Path),
                             help="TOML configuration file (MINIGATE_* variables override it).")


@click.group()
@click.version_option(package_name="minigate")
def main() -> None:
    """minigate: payments for WeChat and Alipay mini programs."""


PORT = click.IntRange(1, 65535)


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=PORT)
def serve(config: Path | None, host: str, port: int) -> None:
    """Run the API (sandbox mode when no provider has credentials)."""
    from minigate.app import create_app
    from minigate.preflight import prepare

    settings = _settings(config)
    _logging(settings)
    generated_key = settings.sandbox_mode and settings.api_key is None
    if settings.sandbox_mode:
        updates: dict[str, object] = {}
        if settings.public_url == Settings.model_fields["public_url"].default:
            updates["public_url"] = f"http://{host}:{port}"
        if generated_key:
            updates["api_key"] = SecretStr("sk_sandbox_" + secrets.token_urlsafe(18))
        settings = _kept_sandbox_keys(settings.model_copy(update=updates) if updates
                                      else settings)
    _run(prepare(settings))
    if settings.sandbox_mode:
        _print_sandbox_banner(settings, show_key=generated_key)
    from minigate.http_limits import uvicorn_options

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None,
                access_log=settings.access_log, **uvicorn_options(settings.http))


def _kept_sandbox_keys(settings: Settings) -> Settings:
    """In sandbox mode, ``serve`` and ``worker`` keep the simulated merchants' keys in one
    directory (default ./minigate-data/sandbox-keys): restarts keep the keys outside
    clients hold, and every process of one deployment signs and verifies with the same."""
    if not settings.sandbox_mode or settings.sandbox.keys_dir:
        return settings
    from minigate.sandbox.keystore import DEFAULT_KEYS_DIR

    return settings.model_copy(update={
        "sandbox": settings.sandbox.model_copy(update={"keys_dir": DEFAULT_KEYS_DIR})})


def _print_sandbox_banner(settings: Settings, *, show_key: bool) -> None:
    # A key minigate generated is shown (nobody else knows it); one that was configured is
    # not: whoever set it has it, and a banner ends up in logs.
    key = (settings.api_key.get_secret_value() if show_key and settings.api_key is not None
           else "the one configured (MINIGATE_API_KEY / api_key; not shown)")
    base = settings.public_url
    click.echo("minigate is running in SANDBOX mode: every provider is simulated.")
    click.echo(f"  merchant API key : {key}")
    click.echo(f"  API              : {base}/v1   (OpenAPI: {base}/openapi.json, docs: {base}/docs)")
    click.echo(f"  sandbox wallet   : {base}/sandbox/wallet/login | requestPayment | tradePay")
    click.echo(f"  database         : {masked_url(settings.database_url)}")
    click.echo(f"  sandbox keys     : {settings.sandbox.keys_dir} "
               "(print them: minigate sandbox credentials --keys-dir …)")
    click.echo(f"  operations       : {base}/metrics, {base}/readyz, {base}/healthz")


@main.command()
def demo() -> None:
    """Run every provider × channel end to end in the sandbox and print a table."""
    from minigate.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(run_demo()))


@main.command()
@config_option
def migrate(config: Path | None) -> None:
    """Apply database migrations (says which ones it applied)."""
    from minigate.preflight import migrate_database

    settings = _settings(config)
    applied, state = _run(migrate_database(settings.database_url))
    where = masked_url(settings.database_url)
    head = ", ".join(state.current)
    if applied:
        click.echo(f"applied {', '.join(applied)} to {where}; now at {head}")
    else:
        click.echo(f"{where} is already at {head}: nothing to apply")


@main.command()
@config_option
@click.option("--metrics-port", type=PORT, default=None,
              help="Serve this worker's counters at /metrics on this port (no token: keep "
                   "it on a private address).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
def worker(config: Path | None, metrics_port: int | None, metrics_host: str) -> None:
    """Run background jobs only: reconciliation, expiry, merchant webhooks."""
    from minigate.app import Runtime
    from minigate.observability.metrics import serve_process_metrics
    from minigate.preflight import prepare

    settings = _kept_sandbox_keys(_settings(config))
    _logging(settings)

    async def run() -> None:
        await prepare(settings)
        if metrics_port is not None:
            try:
                serve_process_metrics(metrics_host, metrics_port)
            except OSError as exc:
                raise ConfigError(f"cannot serve metrics on {metrics_host}:{metrics_port}: "
                                  f"{exc.strerror}") from None
        runtime = Runtime(settings, run_jobs=True)
        await runtime.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo("minigate worker running (Ctrl-C to stop)")
        await stop.wait()
        await runtime.stop()

    _run(run())


@main.command("dashboard-user")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
def dashboard_user(name: str, password_stdin: bool) -> None:
    """Hash a dashboard password: prints the line to add under [dashboard.users]."""
    import json

    from minigate.dashboard.security import MAX_NAME, MAX_PASSWORD, hash_password

    if not 1 <= len(name) <= MAX_NAME or not name.isprintable():
        raise click.ClickException(f"NAME must be 1 to {MAX_NAME} printable characters")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not 12 <= len(password) <= MAX_PASSWORD:
        raise click.ClickException("the password must be 12 to 1024 characters")
    click.echo("# Add under [dashboard.users] in the configuration file:", err=True)
    click.echo(f"{json.dumps(name)} = {json.dumps(hash_password(password))}")


keys_dir_option = click.option(
    "--keys-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
    help="Where the simulated merchants' keys and certificates are kept (created on first "
         "run, reused after). [default: ./minigate-data/sandbox-keys]")


def _sandbox_credentials(keys_dir: Path | None) -> SandboxCredentials:
    from minigate.sandbox import keystore

    try:
        return keystore.load_or_create(keys_dir or keystore.DEFAULT_KEYS_DIR)
    except (keystore.KeyStoreError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc


@main.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=PORT)
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="Multiply provider retry intervals (0.01 = 100x faster).")
@keys_dir_option
@click.option("--provider", type=click.Choice(["wechatpay"]), default=None,
              help="Also serve this provider's real paths at the root (e.g. /v3/…, /pay/…).")
@click.option("--tls", is_flag=True, help="Serve HTTPS (certificates from the keys "
              "directory) and require the client certificate on v2 refunds, as WeChat does.")
@click.option("--keep-hours", default=24.0, show_default=True,
              type=click.FloatRange(min=0, max=24 * 366),
              help="Forget a simulated payment this long after its last activity (made, "
              "paid, refunded or closed; 0: keep until restart).")
@click.option("--max-records", default=100_000, show_default=True, type=click.IntRange(min=0),
              help="Keep at most this many of each kind of simulated record, the least recently "
              "active going first (0: no limit).")
@click.pass_context
def sandbox(ctx: click.Context, host: str, port: int, time_scale: float, keys_dir: Path | None,
            provider: str | None, tls: bool, keep_hours: float, max_records: int) -> None:
    """Run the provider simulators alone, for other systems' integration tests."""
    if ctx.invoked_subcommand is not None:
        return
    from minigate.sandbox.retention import RetentionPolicy
    from minigate.sandbox.server import create_sandbox_app, describe, serve

    creds = _sandbox_credentials(keys_dir)
    retention = RetentionPolicy.from_hours(keep_hours, max_records)
    base = f"{'https' if tls else 'http'}://{host}:{port}"
    click.echo(describe(base, creds, tls=tls, provider_at_root=provider, retention=retention))
    configure_logging("INFO")
    serve(create_sandbox_app(time_scale, creds, provider, retention=retention), host, port,
          creds, tls=tls)


@sandbox.command("credentials")
@keys_dir_option
@click.option("--base-url", default="http://127.0.0.1:12111", show_default=True,
              help="Where the sandbox runs (the printed base URLs start with it).")
@click.option("--format", "fmt", type=click.Choice(["all", "toml", "env"]), default="all",
              show_default=True)
def sandbox_credentials(keys_dir: Path | None, base_url: str, fmt: str) -> None:
    """Print the sandbox credentials: a minigate TOML block and environment variables."""
    from minigate.sandbox.export import as_toml, env_lines

    creds = _sandbox_credentials(keys_dir)
    if fmt in ("all", "toml"):
        click.echo(as_toml(creds, base_url))
    if fmt in ("all", "env"):
        click.echo(env_lines(creds, base_url))


@main.command()
@config_option
def check(config: Path | None) -> None:
    """Check the configuration as production would use it; exit 1 if anything would fail."""
    from minigate.checks import Row, render, run_checks

    try:
        settings = _settings(config)
    except Refused as exc:
        click.echo(render([Row("configuration", "FAIL", exc.message)]))
        sys.exit(1)
    rows = _run(run_checks(settings, config))
    click.echo(render(rows))
    if any(row.status == "FAIL" for row in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
