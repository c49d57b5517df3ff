"""Running the real ``minigate`` command in a subprocess, as an operator would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def clean_env(**values: str) -> dict[str, str]:
    """The environment without any MINIGATE_* setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith("MINIGATE_") or k.upper().startswith(
               ("MINIGATE_REQUIRE_POSTGRES", "MINIGATE_TEST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


def run_cli(cwd: Path, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "minigate.cli", *args], env=clean_env(**env), cwd=cwd,
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def run_many(cwd: Path, runs: list[tuple[list[str], dict[str, str]]],
             timeout: float = 90) -> list[subprocess.CompletedProcess[str]]:
    """Several CLI runs at once (each is mostly interpreter start-up)."""
    procs = [(args, subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "minigate.cli", *args], env=clean_env(**env), cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL))
        for args, env in runs]
    results = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "minigate.cli", *args], env=clean_env(**env), cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def wait_ready(base: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"minigate exited {proc.returncode}:\n{out}\n{err}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("minigate did not start")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.terminate()
    try:
        return proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def one_line_refusal(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal's single line; fails the test unless exit 2, one line, no traceback."""
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]
