"""Debian's PgBouncer in transaction mode in front of the test's private PostgreSQL.

`make test` installs the package (scripts/ensure-pgbouncer); where it is missing the tests
that need it skip and say so. It listens on 127.0.0.1 only, on a free port, and forwards any
database name to the same name on the private server (`* =`), so the per-test databases
copied from the template are reachable through it as they are made.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from couponapi.db.embedded import SUPERUSER, ServerInfo

CANDIDATES = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")


def binary() -> str | None:
    """The pgbouncer executable, or None when it is not installed."""
    found = shutil.which("pgbouncer")
    return found or next((path for path in CANDIDATES if Path(path).exists()), None)


def version() -> str:
    """`pgbouncer --version`'s first line, for the test report."""
    path = binary()
    assert path is not None
    return subprocess.run([path, "--version"], capture_output=True, text=True).stdout.split("\n")[0]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def pgbouncer(server: ServerInfo) -> Iterator[int]:
    """Run PgBouncer (pool_mode = transaction) in front of `server`; yields its port."""
    path = binary()
    assert path is not None, "pgbouncer is not installed"
    folder = Path(tempfile.mkdtemp(prefix="couponapi-pgbouncer-"))
    port = _free_port()
    (folder / "userlist.txt").write_text(f'"{SUPERUSER}" "{server.password}"\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
* = host=127.0.0.1 port={server.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {folder}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 60
max_db_connections = 120
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""
    )
    user = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    if user is None and os.geteuid() == 0:
        user = pwd.getpwnam("nobody")
    if user is not None:  # PgBouncer refuses to run as root
        for entry in [folder, *folder.iterdir()]:
            os.chown(entry, user.pw_uid, user.pw_gid)
        (folder / "userlist.txt").chmod(0o600)
    command = [path, str(folder / "pgbouncer.ini")]
    if user is not None:
        command[1:1] = ["-u", user.pw_name]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, folder)
        yield port
    finally:
        process.send_signal(signal.SIGINT)  # SIGINT: close client connections, exit
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _report(folder / "pgbouncer.log")
        shutil.rmtree(folder, ignore_errors=True)


def _report(log: Path) -> None:
    """For the test that ran this session (COUPONAPI_TEST_POOLER_REPORT): how many clients
    logged in through PgBouncer, and whether it refused any start-up parameter."""
    where = os.environ.get("COUPONAPI_TEST_POOLER_REPORT")
    if not where:
        return
    said = log.read_text(errors="replace") if log.exists() else ""
    report = json.loads(Path(where).read_text()) if Path(where).exists() else {"logins": 0}
    report["logins"] += said.count("login attempt:")  # one PgBouncer per test: add them up
    report["refused_parameters"] = report.get("refused_parameters", 0) + said.count(
        "unsupported startup parameter"
    )
    report["version"] = version()
    Path(where).write_text(json.dumps(report))


def _wait_for_port(port: int, process: subprocess.Popen[bytes], folder: Path) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = folder / "pgbouncer.log"
            said = log.read_text() if log.exists() else ""
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{output}\n{said}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("pgbouncer did not listen within 15 s")
