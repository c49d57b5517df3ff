"""The ``minigate`` command: serve | demo | worker | migrate | sandbox | dashboard-user."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
from pathlib import Path

import click
import uvicorn

from minigate.config import Settings, load_settings


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")


config_option = click.option("--config", "config", type=click.Path(path_type=Path),
                             help="TOML configuration file (MINIGATE_* variables override it).")


@click.group()
@click.version_option(package_name="minigate")
def main() -> None:
    """minigate: payments for WeChat and Alipay mini programs."""


@main.command()
@config_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(config: Path | None, host: str, port: int) -> None:
    """Run the API (sandbox mode when no provider has credentials)."""
    from minigate.app import create_app

    settings = _settings(config)
    _logging(settings.log_level)
    if settings.sandbox_mode:
        updates: dict[str, object] = {}
        if settings.public_url == Settings.model_fields["public_url"].default:
            updates["public_url"] = f"http://{host}:{port}"
        if settings.api_key is None:
            updates["api_key"] = "sk_sandbox_" + secrets.token_urlsafe(18)
        settings = settings.model_copy(update=updates) if updates else settings
        _print_sandbox_banner(settings)
    elif settings.api_key is None:
        raise click.ClickException("MINIGATE_API_KEY is required outside sandbox mode")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
                access_log=settings.access_log)


def _print_sandbox_banner(settings: Settings) -> None:
    from pydantic import SecretStr

    key = settings.api_key.get_secret_value() if isinstance(settings.api_key, SecretStr) else ""
    base = settings.public_url
    click.echo("minigate is running in SANDBOX mode: every provider is simulated.")
    click.echo(f"  merchant API key : {key}")
    click.echo(f"  API              : {base}/v1   (OpenAPI: {base}/openapi.json, docs: {base}/docs)")
    click.echo(f"  sandbox wallet   : {base}/sandbox/wallet/login | requestPayment | tradePay")
    click.echo(f"  database         : {settings.database_url}")


@main.command()
def demo() -> None:
    """Run every provider × channel end to end in the sandbox and print a table."""
    from minigate.demo import run_demo

    logging.basicConfig(level=logging.ERROR)
    sys.exit(asyncio.run(run_demo()))


@main.command()
@config_option
def migrate(config: Path | None) -> None:
    """Apply database migrations."""
    from minigate.store.db import make_engine
    from minigate.store.db import migrate as apply

    settings = _settings(config)

    async def run() -> None:
        engine = make_engine(settings.database_url)
        try:
            await apply(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    click.echo(f"migrated {settings.database_url.split('@')[-1]}")


@main.command()
@config_option
def worker(config: Path | None) -> None:
    """Run background jobs only: reconciliation, expiry, merchant webhooks."""
    from minigate.app import Runtime

    settings = _settings(config)
    _logging(settings.log_level)

    async def run() -> None:
        runtime = Runtime(settings, run_jobs=True)
        await runtime.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        click.echo("minigate worker running (Ctrl-C to stop)")
        await stop.wait()
        await runtime.stop()

    asyncio.run(run())


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


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="Multiply provider retry intervals (0.01 = 100x faster).")
def sandbox(host: str, port: int, time_scale: float) -> None:
    """Run the provider simulators alone, for other systems' integration tests."""
    from minigate.sandbox.server import create_sandbox_app, describe

    click.echo(describe(f"http://{host}:{port}"))
    uvicorn.run(create_sandbox_app(time_scale), host=host, port=port, log_level="info")


if __name__ == "__main__":
    main()
