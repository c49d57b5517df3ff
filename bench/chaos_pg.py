"""A private PostgreSQL cluster for the fault soak, so it can be stopped and started.

``initdb`` and ``pg_ctl`` come from the machine (``PATH`` or ``/usr/lib/postgresql/<n>/bin``).
``initdb`` refuses to run as root, so as root every command runs as the ``postgres`` OS user
(``runuser``) and the cluster's directory belongs to that user. The server listens on
127.0.0.1 on a free port with its unix socket in the same directory; no other server on the
machine is touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from bench.servers import free_port


def pg_bin(name: str) -> str:
    """The newest installed PostgreSQL's ``name`` binary."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for bindir in reversed(versions):
        if (bindir / name).exists():
            return str(bindir / name)
    raise RuntimeError(f"{name} not found: install PostgreSQL's server binaries")


class TempCluster:
    """``initdb`` into ``root/pgdata``; :meth:`start`, :meth:`stop` (``immediate`` or
    ``fast``) and :meth:`destroy`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:  # the cluster's files and socket belong to postgres
            pw = pwd.getpwnam("postgres")
            os.chown(root, pw.pw_uid, pw.pw_gid)
        self.running = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_postgres else []) + list(args)
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).decode(errors='replace')[-500:]}")

    def init(self) -> None:
        self._run(pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    def start(self) -> None:
        # fsync off: a crash of the server (``stop -m immediate``) still recovers from the
        # WAL in the page cache; only a machine crash could lose it, and this is a test cluster.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c max_connections=200")
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start", timeout=90)
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "stop", timeout=90)
        self.running = False

    def destroy(self) -> None:
        """Stop the server if it runs and delete its files (the log stays)."""
        if self.running:
            try:
                self.stop("immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.data, ignore_errors=True)
