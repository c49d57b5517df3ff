"""The ``minigate`` command: serve | demo | worker | migrate | sandbox | dashboard-user."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
import uvicorn

from minigate.config import Settings, load_settings

if TYPE_CHECKING:
    from minigate.sandbox.keystore import SandboxCredentials


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
        settings = _kept_sandbox_keys(settings.model_copy(update=updates) if updates
                                      else settings)
        _print_sandbox_banner(settings)
    elif settings.api_key is None:
        raise click.ClickException("MINIGATE_API_KEY is required outside sandbox mode")
    from minigate.http_limits import uvicorn_options

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info",
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


def _print_sandbox_banner(settings: Settings) -> None:
    from pydantic import SecretStr

    key = settings.api_key.get_secret_value() if isinstance(settings.api_key, SecretStr) else ""
    base = settings.public_url
    click.echo("minigate is running in SANDBOX mode: every provider is simulated.")
    click.echo(f"  merchant API key : {key}")
    click.echo(f"  API              : {base}/v1   (OpenAPI: {base}/openapi.json, docs: {base}/docs)")
    click.echo(f"  sandbox wallet   : {base}/sandbox/wallet/login | requestPayment | tradePay")
    click.echo(f"  database         : {settings.database_url}")
    click.echo(f"  sandbox keys     : {settings.sandbox.keys_dir} "
               "(print them: minigate sandbox credentials --keys-dir …)")


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

    settings = _kept_sandbox_keys(_settings(config))
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
@click.option("--port", default=12111, show_default=True, type=int)
@click.option("--time-scale", default=1.0, show_default=True, type=float,
              help="Multiply provider retry intervals (0.01 = 100x faster).")
@keys_dir_option
@click.option("--provider", type=click.Choice(["wechatpay"]), default=None,
              help="Also serve this provider's real paths at the root (e.g. /v3/…, /pay/…).")
@click.option("--tls", is_flag=True, help="Serve HTTPS (certificates from the keys "
              "directory) and require the client certificate on v2 refunds, as WeChat does.")
@click.pass_context
def sandbox(ctx: click.Context, host: str, port: int, time_scale: float, keys_dir: Path | None,
            provider: str | None, tls: bool) -> None:
    """Run the provider simulators alone, for other systems' integration tests."""
    if ctx.invoked_subcommand is not None:
        return
    from minigate.sandbox.server import create_sandbox_app, describe, serve

    creds = _sandbox_credentials(keys_dir)
    base = f"{'https' if tls else 'http'}://{host}:{port}"
    click.echo(describe(base, creds, tls=tls, provider_at_root=provider))
    serve(create_sandbox_app(time_scale, creds, provider), host, port, creds, tls=tls)


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


if __name__ == "__main__":
    main()
