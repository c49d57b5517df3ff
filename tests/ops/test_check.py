"""minigate check: exit 0 on the demo's configuration, 1 on a broken one, one table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from minigate.checks import _certificate_row
from minigate.cli import main


def _check(*args: str, **env: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check", *args], env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _rows(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if f"  {status}  " in line]


def _row(output: str, item: str) -> tuple[str, str]:
    """(status, detail) of the row named ``item``."""
    for line in output.splitlines():
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=2)
        if parts[0] == item and len(parts) == 3:
            return parts[1], parts[2]
    raise AssertionError(f"no row {item!r} in:\n{output}")


def test_the_demo_configuration_passes(tmp_path: Path) -> None:
    code, out = _check(MINIGATE_MODE="sandbox", MINIGATE_API_KEY="sk_demo_check",
                       MINIGATE_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}")
    assert code == 0, out
    assert not _rows(out, "FAIL")
    assert "sandbox (mode = 'sandbox')" in out
    assert _row(out, "setting api_key") == ("INFO", "******** (from env MINIGATE_API_KEY)")
    assert "sk_demo_check" not in out
    assert not (tmp_path / "demo.db").exists()  # checking creates nothing


def test_a_live_configuration_that_would_fail(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    migrated = CliRunner().invoke(main, ["migrate"], env={"MINIGATE_DATABASE_URL": url})
    assert migrated.exit_code == 0
    config = tmp_path / "minigate.toml"
    config.write_text(f'database_url = "{url}"\nmode = "live"\n'
                      'webhook_url = "http://merchant.example/hooks"\n'
                      '[latipay]\nuser_id = "U1"\nwallet_id = "W1"\n'
                      'base_url = "http://localhost:1"\n')
    code, out = _check("--config", str(config), MINIGATE_API_KEY="sk_live_check",
                       MINIGATE_LATIPAY__API_KEY="lk_check_canary")
    assert code == 1, out
    failing = "\n".join(_rows(out, "FAIL"))
    assert "public_url" in failing and "is not https" in failing
    assert "webhook_url" in failing and "https" in failing
    assert "schema" not in failing and "database" not in failing
    assert _row(out, "setting latipay.user_id") == ("INFO", f"'U1' (from file {config})")
    assert _row(out, "provider latipay base_url") == ("OK", "localhost resolves")
    assert "metrics_token" in "\n".join(_rows(out, "WARN"))
    assert "lk_check_canary" not in out and "sk_live_check" not in out


def test_an_unmigrated_database_and_a_broken_file(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").touch()
    code, out = _check(MINIGATE_DATABASE_URL=url, MINIGATE_MODE="live",
                       MINIGATE_API_KEY="sk_x")
    assert code == 1
    assert "live mode with no provider configured" in out
    assert "run minigate migrate" in "\n".join(_rows(out, "FAIL"))
    bad = tmp_path / "bad.toml"
    bad.write_text('mdoe = "live"\n')
    code, out = _check("--config", str(bad))
    assert code == 1 and "did you mean 'mode'?" in out and "Traceback" not in out


def _certificate(tmp_path: Path, days: int) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "1900000001")])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=400))
            .not_valid_after(now + timedelta(days=days)).sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / f"cert{days}.pem", tmp_path / f"key{days}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_certificate_expiry(tmp_path: Path) -> None:
    assert _certificate_row("c", *_certificate(tmp_path, 200)).status == "OK"
    soon = _certificate_row("c", *_certificate(tmp_path, 10))
    assert soon.status == "WARN" and re.search(r"in (9|10) days", soon.detail)
    assert _certificate_row("c", *_certificate(tmp_path, -1)).status == "FAIL"
    cert, _ = _certificate(tmp_path, 100)
    _, other_key = _certificate(tmp_path, 101)
    assert _certificate_row("c", cert, other_key).status == "FAIL"  # key does not match
    assert _certificate_row("c", str(tmp_path / "none.pem"), other_key).status == "FAIL"


def test_certificate_rows_through_check(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path, 10)
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    CliRunner().invoke(main, ["migrate"], env={"MINIGATE_DATABASE_URL": url})
    code, out = _check(MINIGATE_DATABASE_URL=url, MINIGATE_API_KEY="sk_x",
                       MINIGATE_PUBLIC_URL="https://pay.example",
                       MINIGATE_WECHATPAY__API_VERSION="v2",
                       MINIGATE_WECHATPAY__MCHID="1900000001",
                       MINIGATE_WECHATPAY__APIV2_KEY="k" * 32,
                       MINIGATE_WECHATPAY__BASE_URL="http://localhost:1",
                       MINIGATE_WECHATPAY__CLIENT_CERT_PATH=cert,
                       MINIGATE_WECHATPAY__CLIENT_KEY_PATH=key)
    warned = "\n".join(_rows(out, "WARN"))
    assert "provider wechatpay client certificate" in warned and "expires on" in warned
