"""The command line: `couponapi serve | migrate | db start|stop|url | loadtest | race | keys |
token`."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from couponapi import cli_identity, servers
from couponapi.admin_token import JWT_SECRET_FILE, kept_or_new_token, token_file
from couponapi.config import Settings
from couponapi.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from couponapi.db.migrate import ensure_database, migrate_url
from couponapi.db.pool import connect
from couponapi.db.session_defaults import apply_timeouts
from couponapi.loadtest import commands as load_commands
from couponapi.logs import log_config
from couponapi.strategies import check_claim_strategy


def _embedded(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.data_dir)


async def _prepare(url: str, settings: Settings) -> list[str]:
    """Create and migrate the database, and give the service's role its timeouts; over the
    direct URL when DATABASE_URL is a pooler."""
    direct = settings.direct_database_url or url
    cache = settings.statement_cache_size
    await ensure_database(direct, cache)
    applied = await migrate_url(direct, cache)
    connection = await connect(direct, settings)
    try:
        await apply_timeouts(connection, settings, service_url=url)
    finally:
        await connection.close()
    return applied


def database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The database to use: DATABASE_URL when set, else the private server, started if needed.

    The second item is the private server when this call started it (the caller stops it)."""
    if settings.database_url:
        return settings.database_url, None
    server = _embedded(settings)
    started = server.start()
    return server.info().url(), server if started else None


def serve(settings: Settings) -> None:
    """Prepare the database, then serve the API until SIGINT or SIGTERM.

    A private PostgreSQL that this call started is watched by a supervisor process, which
    starts it again when it dies (db/supervisor), and is stopped on exit; one that was
    already running (`couponapi db start`) is neither watched nor stopped: it is not ours."""
    url, started = database_url(settings)
    supervisor: subprocess.Popen[bytes] | None = None
    # The webhook sender, a process of its own at a lower CPU priority (started again if it
    # dies): delivering never takes a worker's event loop from the claims.
    sender = KeptRunning([sys.executable, "-m", "couponapi.services.webhook_sender",
                          str(os.getpid())])  # fmt: skip
    try:
        applied = asyncio.run(_prepare(url, settings))
        if applied:
            print(f"applied migrations: {', '.join(applied)}", flush=True)
        os.environ["DATABASE_URL"] = url  # the workers read their settings from here
        _admin_token(settings)
        _jwt_secret(settings)
        # Each worker keeps its metrics in files here; /metrics sums them (couponapi.metrics).
        metrics_dir = tempfile.mkdtemp(prefix="couponapi-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        if started is not None:
            supervisor = _supervise(started, settings)
        sender.start()
        servers.run(settings, log_config(settings.log_level))
    finally:
        sender.stop()
        if supervisor is not None:
            # First: it must not start the server again while we stop it.
            supervisor.terminate()
            supervisor.wait(timeout=90)  # at worst, one restart it was in the middle of
        if started is not None:
            started.stop()
        if state := os.environ.pop("COUPONAPI_SUPERVISOR_STATE", None):
            Path(state).unlink(missing_ok=True)
        shutil.rmtree(os.environ.pop("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)


class KeptRunning:
    """A child process, started again (after RESTART_S) whenever it exits, until stop()."""

    RESTART_S = 1.0

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._keep_running, daemon=True)

    def start(self) -> None:
        """Start the process, and the thread that starts it again."""
        self.process = subprocess.Popen(self.command)
        self.watcher.start()

    def _keep_running(self) -> None:
        while not self.stopping.is_set():
            assert self.process is not None
            code = self.process.wait()
            if self.stopping.wait(self.RESTART_S):
                return
            print(f"{self.command[2]} exited ({code}): starting it again", flush=True)
            self.process = subprocess.Popen(self.command)

    def stop(self) -> None:
        """Stop the process for good (SIGTERM, then SIGKILL after 10 s)."""
        self.stopping.set()
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _supervise(server: EmbeddedPostgres, settings: Settings) -> subprocess.Popen[bytes]:
    """Start the process that restarts `server` when it dies; the workers learn where it
    keeps its state (for /metrics) through the environment."""
    state = server.data_dir / "supervisor.json"
    state.unlink(missing_ok=True)  # a killed serve's last word is not this one's
    os.environ["COUPONAPI_SUPERVISOR_STATE"] = str(state)
    command = [sys.executable, "-m", "couponapi.db.supervisor", str(server.data_dir)]
    return subprocess.Popen([*command, str(state), str(os.getpid()), settings.log_level])


def _admin_token(settings: Settings) -> None:
    """No COUPONAPI_ADMIN_TOKEN: use the one kept in the data directory, or make, keep (0600)
    and print one, once. Either way the workers get it through the environment."""
    if settings.admin_token is not None:
        return
    token, made = kept_or_new_token(settings.data_dir)
    os.environ["COUPONAPI_ADMIN_TOKEN"] = token
    where = token_file(settings.data_dir).resolve()
    if made:
        print(f"admin token (kept in {where}, shown only now): {token}", flush=True)
    else:
        print(f"admin token: the one kept in {where}", flush=True)


def _jwt_secret(settings: Settings) -> None:
    """No COUPONAPI_JWT_SECRET nor COUPONAPI_JWT_PUBLIC_KEY: the workers verify user tokens
    with the HS256 secret kept in the data directory (made now, 0600, if there is none), the
    one `couponapi token` signs with."""
    if settings.jwt_secret is not None or settings.jwt_public_key is not None:
        return
    secret, made = kept_or_new_token(settings.data_dir, JWT_SECRET_FILE)
    os.environ["COUPONAPI_JWT_SECRET"] = secret
    where = token_file(settings.data_dir, JWT_SECRET_FILE).resolve()
    print(f"user tokens: HS256 with the secret {'made and ' if made else ''}kept in {where}",
          flush=True)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="couponapi", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve the API (starts the private PostgreSQL)")
    run.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default 1323)")
    run.add_argument("--workers", type=int, help="server processes (default 1)")
    run.add_argument("--server", choices=servers.SERVERS, help="HTTP server (default granian)")
    commands.add_parser("migrate", help="apply the schema migrations and exit")
    db = commands.add_parser("db", help="the private PostgreSQL server")
    db.add_argument("action", choices=["start", "stop", "url"])
    load_commands.add_parsers(commands)  # loadtest, race
    cli_identity.add_parsers(commands)  # keys, token
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `couponapi` command."""
    args = _parser().parse_args(argv)
    if args.command in load_commands.COMMANDS:
        sys.exit(load_commands.run_command(args))
    options = ("host", "port", "workers", "server")
    overrides = {k: v for k in options if (v := getattr(args, k, None))}
    try:
        settings = Settings(**overrides)
        check_claim_strategy(settings.claim_strategy)
        if args.command == "serve":
            serve(settings)
        elif args.command == "token":
            cli_identity.token_command(settings, args)
        elif args.command == "keys":
            url, started = database_url(settings)
            try:
                asyncio.run(_prepare(url, settings))
                cli_identity.keys_command(url, args)
            finally:
                if started is not None:
                    started.stop()
        elif args.command == "migrate":
            url, started = database_url(settings)
            try:
                applied = asyncio.run(_prepare(url, settings))
            finally:
                if started is not None:
                    started.stop()
            print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
        elif args.action == "url":
            print(_embedded(settings).info().url())
        elif args.action == "start":
            server = _embedded(settings)
            server.start()
            asyncio.run(_prepare(server.info().url(), settings))
            print(server.info().url())
        else:
            _embedded(settings).stop()
    except (EmbeddedPostgresError, ValueError, OSError) as error:
        sys.exit(f"couponapi: {error}")
