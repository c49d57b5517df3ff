"""A private PostgreSQL cluster in a temporary directory, to stop and start at will.

Fault tests and the chaos soak need a database they can take down without touching any
other server on the machine. This builds one with the machine's own binaries (``initdb``,
``pg_ctl``), listening on 127.0.0.1 at a free port with trust authentication. ``initdb``
refuses to run as root, so as root the binaries run as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl, or None if this machine has none."""
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateCluster:
    """``start()``, ``stop(mode)``, ``url(database)``; ``close()`` removes everything."""

    def __init__(self, root: Path | None = None) -> None:
        bindir = binaries()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        self.bindir = bindir
        self.root = Path(root or tempfile.mkdtemp(prefix="minigate-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust",
                  "--no-sync", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\n"
                       f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                       "max_connections = 200\nshared_buffers = 32MB\n")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - the machine's own PostgreSQL tools
            [*self._as, str(self.bindir / tool), *args], capture_output=True, text=True,
            check=check, timeout=120)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` (clean shutdown, clients disconnected) or ``immediate`` (a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop",
                  check=False)

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name)
        return self.url(name)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://{self.user}@127.0.0.1:{self.port}/{database}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("private PostgreSQL did not become ready")

    def close(self) -> None:
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
