"""The webhook sender: every event of the feed to every endpoint, at least once, in feed order.

`serve` runs it as a process of its own (`python -m couponapi.services.webhook_sender`,
started again if it dies), off the claim path: a grant writes its ledger rows and nothing
else; the sender reads them from the feed afterwards. It runs at a lower CPU priority
(nice NICE) than the workers: delivering yields to claiming, so a crowd that takes every core
gets them, and the sender catches up as soon as it eases (docs/performance.md has the lag).
One run of a sender on one endpoint:

1. lease it (lease_webhook): one endpoint that is enabled, due and has events, taken with
   FOR UPDATE SKIP LOCKED and marked leased_by/leased_until in a statement of its own, so
   each endpoint has one sender at a time across processes and hosts, and no transaction is
   open while it delivers (an open transaction would hold the feed's horizon back);
2. read the events after the endpoint's position (services.events.read_feed) and POST them
   one at a time, in order, each signed with the standardwebhooks library; `webhook-id` is
   `evt_<event id>`, the same on every retry. The first failure stops the run;
3. record the run in one statement (finish_webhook_run): the new position, the failed
   attempts of the next event and when to retry it (WebhookPolicy.retry_after) or that the
   endpoint is disabled, and every attempt in webhook_delivery.

A sender killed in step 2 recorded nothing of that run: when its lease runs out another
sender takes the endpoint and sends the same events again, with the same ids. A sender that
lost its lease (it took longer than lease_s, which a run cannot) moves nothing.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import secrets
import signal
import socket
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import msgspec
from standardwebhooks.webhooks import Webhook

from couponapi.config import Settings
from couponapi.db.pool import create_pool
from couponapi.db.queries import query
from couponapi.domain.errors import InvalidWebhook
from couponapi.domain.events import Event, EventBody, FeedPosition
from couponapi.domain.webhooks import Attempt, WebhookPolicy
from couponapi.logs import log_config
from couponapi.services.events import read_feed

log = logging.getLogger(__name__)

BATCH = 100  # events read per run
RESPONSE_EXCERPT = 1024  # characters of an answer kept in the log
IDLE_S = 0.25  # pause when no endpoint has anything to send
LANES = 4  # endpoints one process delivers to at once
NICE = 10  # CPU priority below the workers' (0): claims first
POOL_SIZE = LANES + 1  # a connection per lane, and one for the log trimmer
RETENTION_SWEEP_S = 600.0  # how often the delivery log is trimmed to 30 days


@dataclass(slots=True)
class Run:
    """A run on one leased endpoint: where it stands and what was tried."""

    endpoint_id: object
    url: str
    event_types: list[str] | None
    webhook: Webhook
    position: FeedPosition
    failed_attempts: int
    failing_since: datetime | None
    attempts: list[Attempt] = field(default_factory=list)
    disabled_reason: str | None = None
    retry_at: datetime | None = None


def sender_name() -> str:
    """This sender's name in leases: host, process and a random part."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


class WebhookSender:
    """Delivers the feed to every endpoint (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool, policy: WebhookPolicy, name: str | None = None):
        self.pool = pool
        self.policy = policy
        self.name = name or sender_name()

    async def deliver(self, session: aiohttp.ClientSession, run: Run, event: Event) -> bool:
        """POST one event; whether the endpoint took it (a 2xx answer). The attempt is noted
        in `run` either way."""
        body = msgspec.json.encode(EventBody.of(event)).decode()
        message_id = f"evt_{event.id}"
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "couponapi-webhooks",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": run.webhook.sign(message_id, now, body),
        }
        started = time.monotonic()
        status: int | None = None
        excerpt: str | None = None
        error: str | None = None
        try:
            self.policy.check_url(run.url)  # the allowed hosts may have changed since
            timeout = aiohttp.ClientTimeout(total=self.policy.timeout_s)
            async with session.post(
                run.url, data=body, headers=headers, allow_redirects=False, timeout=timeout
            ) as answer:
                status = answer.status
                raw = b""  # the answer's start, read no further (a chunk may be short)
                while len(raw) < RESPONSE_EXCERPT and (
                    chunk := await answer.content.read(RESPONSE_EXCERPT - len(raw))
                ):
                    raw += chunk
                excerpt = raw.decode("utf-8", "replace")[:RESPONSE_EXCERPT] or None
            if not 200 <= status < 300:
                error = f"HTTP {status}" + (
                    " (redirects are not followed)" if 300 <= status < 400 else ""
                )
        except InvalidWebhook as refusal:
            error = str(refusal)
        except TimeoutError:
            error = f"no answer within {self.policy.timeout_s:g} s"
        except (aiohttp.ClientError, OSError, ValueError) as failure:
            error = f"{type(failure).__name__}: {failure}"[:RESPONSE_EXCERPT]
        number = run.failed_attempts + 1
        run.attempts.append(Attempt(event.id, number, now, status, error, excerpt,
                                    int((time.monotonic() - started) * 1000)))  # fmt: skip
        if error is None:
            run.failed_attempts, run.failing_since = 0, None
            return True
        run.failed_attempts = number
        run.failing_since = run.failing_since or now
        pause = self.policy.retry_after(number)
        if pause is None:
            run.disabled_reason = (f"disabled after {number} failed attempts since "
                                   f"{run.failing_since.isoformat()}; last: {error}")  # fmt: skip
        else:
            run.retry_at = now + timedelta(seconds=pause)
        return False

    async def run_once(self, session: aiohttp.ClientSession) -> int:
        """Lease one endpoint with events to send and deliver a run to it; how many events it
        moved past (0: none was due)."""
        row = await self.pool.fetchrow(query("lease_webhook"), self.name, self.policy.lease_s)
        if row is None:
            return 0
        run = Run(
            endpoint_id=row["id"], url=row["url"], event_types=row["event_types"],
            webhook=Webhook(row["secret"]),
            position=FeedPosition(int(row["after_xid"]), row["after_id"]),
            failed_attempts=row["attempts"], failing_since=row["failing_since"],
        )  # fmt: skip
        started = time.monotonic()
        moved = 0
        try:
            for event in await read_feed(self.pool, run.position, BATCH):
                if time.monotonic() - started > self.policy.timeout_s:
                    break  # the lease outlasts the run: no delivery starts after timeout_s
                wanted = run.event_types is None or event.type in run.event_types
                if wanted and not await self.deliver(session, run, event):
                    break
                run.position = event.position
                moved += 1
        finally:
            await self.finish(run)
        return moved

    async def finish(self, run: Run) -> None:
        """Record a run (finish_webhook_run): the position, the retry or the disabling, the
        attempts; the lease ends."""
        attempts = run.attempts
        next_at = run.retry_at or datetime.now(UTC)
        # ForeignKeyViolation: the endpoint was deleted meanwhile, nothing left to record.
        with suppress(asyncpg.ForeignKeyViolationError):
            await self.pool.fetchval(
                query("finish_webhook_run"),
                run.endpoint_id, self.name, str(run.position.xid), run.position.id,
                run.failed_attempts, next_at, run.disabled_reason,
                [a.event_id for a in attempts], [a.attempt for a in attempts],
                [a.attempted_at for a in attempts], [a.status_code for a in attempts],
                [a.error for a in attempts], [a.response for a in attempts],
                [a.duration_ms for a in attempts],
            )  # fmt: skip
        if run.disabled_reason is not None:
            log.warning("webhook endpoint %s %s", run.endpoint_id, run.disabled_reason)

    async def lane_forever(self, session: aiohttp.ClientSession) -> None:
        """Runs back to back while endpoints have events; a pause of IDLE_S when none has. A
        failed run (PostgreSQL away, a timeout) is logged and tried again: what it had not
        recorded is sent again."""
        while True:
            try:
                moved = await self.run_once(session)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
                log.warning("webhook run failed, retrying in 1 s: %r", error)
                await asyncio.sleep(1.0)
                continue
            except Exception:  # a bug must not stop every delivery of this process for good
                log.exception("webhook run failed, retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            if moved == 0:
                await asyncio.sleep(IDLE_S)

    async def trim_log_forever(self) -> None:
        """Every RETENTION_SWEEP_S, forget delivery attempts older than 30 days."""
        while True:
            await asyncio.sleep(RETENTION_SWEEP_S)
            try:
                for _ in range(100):
                    if await self.pool.fetchval(query("delete_old_webhook_deliveries"), 1000) == 0:
                        break
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("webhook log trim failed, retrying later: %r", error)

    async def run_forever(self) -> None:
        """LANES lanes and the log trimmer, until cancelled."""
        connector = aiohttp.TCPConnector(limit=LANES * 2)
        session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        async with session, asyncio.TaskGroup() as group:
            for _ in range(LANES):
                group.create_task(self.lane_forever(session))
            group.create_task(self.trim_log_forever())


async def _deliver_until_orphaned(settings: Settings, parent: int) -> None:
    pool = await create_pool(settings.database_url or "", settings)
    sender = asyncio.create_task(WebhookSender(pool, policy_of(settings)).run_forever())
    try:
        while os.getppid() == parent:  # noqa: ASYNC110 (polled: the parent's death sets nothing)
            await asyncio.sleep(1.0)  # never outlive serve
    finally:
        sender.cancel()
        await pool.close()


def policy_of(settings: Settings) -> WebhookPolicy:
    """The operator's webhook policy, from the settings."""
    return WebhookPolicy.of(
        settings.webhook_hosts, settings.webhook_timeout_s, settings.webhook_retry_s
    )


def main(argv: list[str]) -> None:
    """Entry point: `python -m couponapi.services.webhook_sender PARENT_PID` (serve starts it,
    with the workers' environment: DATABASE_URL and every COUPONAPI_* setting)."""
    os.nice(NICE)
    settings = Settings(pool_size=POOL_SIZE)
    logging.config.dictConfig(log_config(settings.log_level))
    # Ctrl-C reaches the whole process group: serve decides when we stop (SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with suppress(KeyboardInterrupt):
        asyncio.run(_deliver_until_orphaned(settings, int(argv[0])))


if __name__ == "__main__":
    main(sys.argv[1:])
