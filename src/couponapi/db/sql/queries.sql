-- Every query the service runs, each under a name and a one-line description.
-- couponapi.db.queries loads this file once; the strategies say which locks each one takes.

-- name: read_quantity
-- What is left, read with no lock (the naive strategy's first step).
SELECT quantity FROM coupon WHERE id = $1;

-- name: write_quantity
-- Overwrite what is left with a value computed by the caller (the naive strategy's lost update).
UPDATE coupon SET quantity = $2 WHERE id = $1;

-- name: lock_quantity
-- What is left, with the row locked until the transaction ends.
-- Safe: every giver of this coupon queues at this one row lock, so each reads what the last
-- one committed (no oversell); one row lock per transaction makes no cycle (no deadlock).
SELECT quantity FROM coupon WHERE id = $1 FOR UPDATE;

-- name: decrement_quantity
-- Take one from what is left; the caller holds the row lock.
UPDATE coupon SET quantity = quantity - 1 WHERE id = $1 RETURNING quantity;

-- name: insert_given_event
-- Record one grant in the v1 ledger.
INSERT INTO coupon_given_events (couponid, userid, newquantity) VALUES ($1::uuid::text, $2, $3);

-- name: give_with_function
-- Give one coupon with the PL/pgSQL function; returns the quantity left.
SELECT give_coupon_to_user($1, $2);

-- ---- the atomic and the group-commit strategies ----

-- name: give_atomic
-- Give one coupon in one statement; one row: (quantity_left, known); quantity_left NULL = refused.
WITH taken AS (
    -- The row lock: only a row that passes `quantity > 0` on its snapshot is locked. A
    -- concurrent giver that updated it first makes this one wait, then re-check the condition
    -- on the newly committed version (READ COMMITTED re-evaluation), so the last unit goes to
    -- exactly one giver: no oversell. One row per statement: no lock cycle, no deadlock.
    -- A sold-out row fails the check on the snapshot and is skipped: no lock, no write.
    UPDATE coupon SET quantity = quantity - 1
    WHERE id = $1 AND quantity > 0
    RETURNING id, quantity
), logged AS (
    INSERT INTO coupon_given_events (couponid, userid, newquantity)
    SELECT id::text, $2, quantity FROM taken
    RETURNING newquantity
)
SELECT newquantity AS quantity_left, true AS known FROM logged
UNION ALL
-- Only when nothing was taken: tell an unknown coupon from a sold-out one, same round trip.
SELECT NULL, EXISTS (SELECT 1 FROM coupon WHERE id = $1) WHERE NOT EXISTS (SELECT 1 FROM taken);

-- name: give_batch
-- Give one coupon to a batch of users (give_coupons_to_users); one row per user, in order.
SELECT outcome, quantity_left FROM give_coupons_to_users($1, $2::text[]);

-- name: give_many
-- Give a batch of coupons, element i giving $1[i] to $2[i], grouped by coupon in one
-- transaction (give_coupons_many_v1, migration 0007); one row per element, in order.
SELECT ord, outcome, quantity_left, failure FROM give_coupons_many_v1($1::uuid[], $2::text[]);

-- ---------------------------------------------------------------------------------------
-- See the race: the load tester's checks and the dashboard's read-only stats.
-- None of these run on the claim path.

-- name: loadtest_run_grants_v1
-- Ledger rows of one run's users ($2 = their id prefix) on one coupon, and how many of
-- those users hold more than $3 (the per-user limit).
SELECT coalesce(sum(n), 0)::int AS ledger_rows, count(*) FILTER (WHERE n > $3)::int AS users_over_limit
  FROM (SELECT count(*) AS n FROM coupon_given_events
         WHERE couponid::uuid = $1::uuid AND starts_with(userid, $2) GROUP BY userid) AS per_user;

-- name: dashboard_coupons
-- The $1 newest coupons plus those in $2 (the active ones): what exists, what is left as of
-- now, the holds still running (held: live, neither redeemed nor expired) and the expired
-- claims (marked, or due and not yet marked). Both are read through their partial indexes
-- (claim_hold_idx, claim_expired_idx), never claim by claim.
SELECT c.id, c.name, c.total_quantity, c.quantity + d.due AS quantity, c.hold_seconds,
       (SELECT count(*) FROM claim h
         WHERE h.coupon_id = c.id AND h.status = 'claimed'
           AND h.expires_at IS NOT NULL AND h.expires_at > now())::integer AS held,
       ((SELECT count(*) FROM claim x WHERE x.coupon_id = c.id AND x.status = 'expired')
           + d.due)::integer AS expired
  FROM coupon AS c
 CROSS JOIN LATERAL (SELECT due_holds_v1(c.id, now()) AS due) AS d
 WHERE c.id = ANY($2::uuid[])
    OR c.id IN (SELECT id FROM coupon ORDER BY created_at DESC, id LIMIT $1)
 ORDER BY c.created_at DESC, c.id;

-- name: dashboard_recent_grants
-- Grants per coupon per $1-second bucket over the last $2 seconds, from both ledgers (v1 and
-- v2); each reads at most its newest $3 rows (an index range on the primary key), so the
-- cost stays bounded however long the ledgers grow. Also the database's current bucket.
SELECT coupon_id, bucket, sum(n)::int AS n,
       floor(extract(epoch FROM now()) / $1)::bigint AS now_bucket
  FROM (SELECT couponid::uuid AS coupon_id,
               floor(extract(epoch FROM given_at) / $1)::bigint AS bucket, count(*) AS n
          FROM coupon_given_events
         WHERE id > (SELECT coalesce(max(id), 0) - $3 FROM coupon_given_events)
           AND given_at > now() - make_interval(secs => $2)
         GROUP BY 1, 2
        UNION ALL
        SELECT coupon_id, floor(extract(epoch FROM occurred_at) / $1)::bigint, count(*)
          FROM claim_event
         WHERE id > (SELECT coalesce(max(id), 0) - $3 FROM claim_event)
           AND kind = 'granted' AND occurred_at > now() - make_interval(secs => $2)
         GROUP BY 1, 2) AS grants
 GROUP BY 1, 2
UNION ALL
SELECT NULL, NULL, NULL, floor(extract(epoch FROM now()) / $1)::bigint;

-- name: dashboard_race_try_lock
-- Take the race lock for this transaction (true) or find it taken (false): one race at a
-- time per database, held until the transaction ends (pooler-safe: nothing outlives it).
SELECT pg_try_advisory_xact_lock($1);

-- name: dashboard_race_locked
-- Whether any session holds the race lock (a bigint advisory lock shows in pg_locks as
-- classid = high 32 bits, objid = low 32 bits, objsubid = 1).
SELECT EXISTS (SELECT 1 FROM pg_locks
                WHERE locktype = 'advisory' AND granted AND objsubid = 1
                  AND (classid::bigint << 32) + objid::bigint = $1);

-- name: loadtest_run_grants_v2
-- Like loadtest_run_grants_v1, from the v2 ledger (claim_event, kind granted).
SELECT coalesce(sum(n), 0)::int AS ledger_rows, count(*) FILTER (WHERE n > $3)::int AS users_over_limit
  FROM (SELECT count(*) AS n FROM claim_event
         WHERE coupon_id = $1 AND kind = 'granted' AND starts_with(user_id, $2)
         GROUP BY user_id) AS per_user;

-- v2 claims (the current API, migration 0002) ------------------------------------------------

-- name: claim_coupons
-- Claim a coupon for each element of the arrays, in order; one row per element (see
-- claim_coupons_v1 in 0002 for the contract, claim_coupons_v2 in 0006 for holds).
SELECT ord, outcome, status, body
FROM claim_coupons_v2($1::uuid, $2::text[], $3::text[], $4::text[], $5::text[]);

-- name: claim_coupons_many
-- Claim a batch of claims on any coupons, element i claiming $1[i], grouped by coupon in one
-- transaction (claim_coupons_many_v1, migration 0007); one row per element, in order.
SELECT ord, outcome, status, body
FROM claim_coupons_many_v1($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]);

-- operations (/readyz) -----------------------------------------------------------------------

-- name: applied_migrations
-- The migration versions applied to this database (readiness compares them with the shipped ones).
SELECT version FROM schema_migrations;

-- name: insert_coupon
-- Create a coupon (all of it left); a duplicate id raises unique_violation.
INSERT INTO coupon (id, name, type, quantity, total_quantity, per_user_limit, starts_at, ends_at,
                    hold_seconds)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8)
RETURNING id, name, type, total_quantity, quantity AS remaining, per_user_limit, starts_at,
          ends_at, paused, created_at, hold_seconds, 0::bigint AS redeemed;

-- name: get_coupon
-- One coupon with its counts as of now (what is left includes the holds that are due),
-- without locking.
SELECT c.id, c.name, c.type, c.total_quantity,
       c.quantity + due_holds_v1(c.id, now()) AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at, c.hold_seconds,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM coupon c
WHERE c.id = $1;

-- name: all_coupons
-- Every coupon with its counts, in id order, without locking (v1's /all).
SELECT c.id, c.name, c.type, c.total_quantity,
       c.quantity + due_holds_v1(c.id, now()) AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at, c.hold_seconds,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM coupon c
ORDER BY c.id;

-- name: list_coupons
-- A page of coupons after the cursor ($1 created_at, $2 id), oldest first, at most $3.
SELECT c.id, c.name, c.type, c.total_quantity,
       c.quantity + due_holds_v1(c.id, now()) AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at, c.hold_seconds,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM coupon c
WHERE (c.created_at, c.id) > ($1, $2)
ORDER BY c.created_at, c.id
LIMIT $3;

-- name: change_coupon
-- Change a coupon (change_coupon_v1: the coupon row lock, then only the claim rows of due
-- holds it gives back to make room): $2 total quantity, $3/$4 set starts_at, $5/$6 set
-- ends_at, $7 paused, $8 per-user limit, $9/$10 set hold_seconds (NULL / false: keep). One
-- word: changed, not_found or hold_shortens; a total below what is held raises
-- coupon_quantity_not_negative.
SELECT change_coupon_v1($1, $2, $3, $4, $5, $6, $7, $8, $9, $10);

-- name: get_claim
-- One claim by id, without locking; a hold past its expires_at reads 'expired' (as it is),
-- whether or not the sweeper marked it yet (so do the listings below).
SELECT id, coupon_id, user_id, code,
       CASE WHEN status = 'claimed' AND expires_at <= now() THEN 'expired' ELSE status END
           AS status,
       claimed_at, released_at, redeemed_at, expires_at
FROM claim
WHERE id = $1;

-- name: list_claims_of_coupon
-- A page of a coupon's claims after the cursor ($2 claimed_at, $3 id), oldest first, at most $4.
SELECT id, coupon_id, user_id, code,
       CASE WHEN status = 'claimed' AND expires_at <= now() THEN 'expired' ELSE status END
           AS status,
       claimed_at, released_at, redeemed_at, expires_at
FROM claim
WHERE coupon_id = $1 AND (claimed_at, id) > ($2, $3)
ORDER BY claimed_at, id
LIMIT $4;

-- name: list_claims_of_user
-- A page of a user's claims after the cursor ($2 claimed_at, $3 id), oldest first, at most $4.
SELECT id, coupon_id, user_id, code,
       CASE WHEN status = 'claimed' AND expires_at <= now() THEN 'expired' ELSE status END
           AS status,
       claimed_at, released_at, redeemed_at, expires_at
FROM claim
WHERE user_id = $1 AND (claimed_at, id) > ($2, $3)
ORDER BY claimed_at, id
LIMIT $4;

-- name: claim_user
-- Who holds a claim (NULL: no such claim); a user token may release its own claims only.
SELECT user_id FROM claim WHERE id = $1;

-- name: release_claim
-- Give a claim back (locks coupon row -> claim row, see release_claim_v2); one row.
SELECT outcome FROM release_claim_v2($1);

-- name: redeem_claim
-- Spend a code exactly once (locks the claim row, see redeem_claim_v2); one row.
SELECT outcome, claim_id FROM redeem_claim_v2($1);

-- name: coupon_exists
-- Whether a coupon has this id.
SELECT EXISTS (SELECT 1 FROM coupon WHERE id = $1);

-- name: delete_expired_idempotency_keys
-- Forget up to $1 idempotency keys older than 24 hours (a periodic sweep; returns the count).
WITH expired AS (
    DELETE FROM idempotency_key
    WHERE key IN (SELECT key FROM idempotency_key
                  WHERE created_at < now() - interval '24 hours'
                  LIMIT $1
                  FOR UPDATE SKIP LOCKED)
    RETURNING 1)
SELECT count(*) FROM expired;

-- holds that expire (migration 0006, couponapi.services.holds) ------------------------------

-- name: coupons_with_due_holds
-- Up to $1 coupons that have a hold due now, for the sweeper. A loose index scan of
-- claim_hold_idx: one probe per coupon with live holds (its earliest expiry comes first),
-- however many claims each has. No lock: sweep_holds takes them.
WITH RECURSIVE next_coupon AS (
    (SELECT c.coupon_id, c.expires_at FROM claim AS c
      WHERE c.status = 'claimed' AND c.expires_at IS NOT NULL
      ORDER BY c.coupon_id, c.expires_at LIMIT 1)
    UNION ALL
    SELECT later.coupon_id, later.expires_at
      FROM next_coupon AS n
     CROSS JOIN LATERAL (SELECT c.coupon_id, c.expires_at FROM claim AS c
                          WHERE c.status = 'claimed' AND c.expires_at IS NOT NULL
                            AND c.coupon_id > n.coupon_id
                          ORDER BY c.coupon_id, c.expires_at LIMIT 1) AS later)
SELECT coupon_id FROM next_coupon WHERE expires_at <= now() LIMIT $1;

-- name: sweep_holds
-- Expire up to $2 due holds of coupon $1 with their ledger rows (sweep_holds_v1: a sweeper's
-- advisory try-lock, then the coupon row lock, then the claim rows); how many.
SELECT sweep_holds_v1($1, $2);

-- name: coupon_audit
-- A coupon's books in one statement, so one snapshot (and one now()): its quantity, what is
-- stored as left, its claims by status as of now (a due hold is expired, `expired_pending`
-- of them not yet marked), v1's grants, the ledger's rows per kind, and the users holding
-- more than the per-user limit (live v2 claims and v1 grants). NULL row: no such coupon.
SELECT c.id, c.total_quantity AS quantity, c.quantity AS stored_remaining, c.per_user_limit,
       k.claims, k.held, k.pending AS expired_pending, k.redeemed, k.released, k.expired,
       e.granted AS ledger_granted, e.released AS ledger_released,
       e.redeemed AS ledger_redeemed, e.expired AS ledger_expired,
       g.given AS given_v1, o.users_over_limit, now() AS checked_at
  FROM coupon AS c
 CROSS JOIN LATERAL (
       SELECT count(*) AS claims,
              count(*) FILTER (WHERE l.status = 'claimed'
                                 AND (l.expires_at IS NULL OR l.expires_at > now())) AS held,
              count(*) FILTER (WHERE l.status = 'claimed' AND l.expires_at <= now()) AS pending,
              count(*) FILTER (WHERE l.status = 'redeemed') AS redeemed,
              count(*) FILTER (WHERE l.status = 'released') AS released,
              count(*) FILTER (WHERE l.status = 'expired'
                                  OR (l.status = 'claimed' AND l.expires_at <= now())) AS expired
         FROM claim AS l WHERE l.coupon_id = c.id) AS k
 CROSS JOIN LATERAL (
       SELECT count(*) FILTER (WHERE v.kind = 'granted') AS granted,
              count(*) FILTER (WHERE v.kind = 'released') AS released,
              count(*) FILTER (WHERE v.kind = 'redeemed') AS redeemed,
              count(*) FILTER (WHERE v.kind = 'expired') AS expired
         FROM claim_event AS v WHERE v.coupon_id = c.id) AS e
 CROSS JOIN LATERAL (
       SELECT count(*) AS given FROM coupon_given_events AS x WHERE x.couponid::uuid = c.id) AS g
 CROSS JOIN LATERAL (
       SELECT count(*) AS users_over_limit
         FROM (SELECT u.user_id FROM (
                      SELECT l.user_id FROM claim AS l
                       WHERE l.coupon_id = c.id
                         AND (l.status = 'redeemed'
                              OR (l.status = 'claimed'
                                  AND (l.expires_at IS NULL OR l.expires_at > now())))
                      UNION ALL
                      SELECT x.userid FROM coupon_given_events AS x
                       WHERE x.couponid::uuid = c.id) AS u
                GROUP BY u.user_id
               HAVING count(*) > c.per_user_limit) AS over) AS o
 WHERE c.id = $1;

-- API keys (migration 0005, couponapi.services.keys) ----------------------------------------

-- name: insert_api_key
-- Store a new key's lookup and digest (never the key); a live key of the same name raises
-- unique_violation (api_key_live_name_idx).
INSERT INTO api_key (name, lookup, digest, scope) VALUES ($1, $2, $3, $4)
RETURNING name, scope, created_at, revoked_at;

-- name: list_api_keys
-- Every key, live and revoked, oldest first (no digest: it is nobody's business).
SELECT name, scope, created_at, revoked_at FROM api_key ORDER BY created_at, id;

-- name: revoke_api_key
-- Revoke the live key of this name; no row when there is none.
UPDATE api_key SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL
RETURNING name, scope, created_at, revoked_at;

-- name: live_api_keys
-- What every process caches (identity.keyring reloads it every half second): the live keys.
SELECT lookup, digest, name, scope FROM api_key WHERE revoked_at IS NULL;

-- the event feed and webhooks (migration 0008, couponapi.services.events, .webhooks) --------

-- name: events_after
-- Up to $3 events after the position ($1 xid as text, $2 id), in feed order, only of the
-- transactions that ended before this statement's snapshot (below its xmin): no event can
-- later appear before the last one returned. Each ledger gives its first $3 keys by its
-- (xid, id) index, so a page costs the same however long the backlog behind it (the
-- planner cannot estimate the horizon, and over the view it would read every row up to it
-- before sorting); then only the page's events are read through event_feed, by id (OFFSET 0
-- keeps that lookup a subquery of its own, by primary key, instead of a join of the whole
-- view). A page of 100 at the end of a 300,000-event backlog: 1.6 ms, against 24-870 ms.
SELECT f.id, f.xid::text AS xid, f.type, f.occurred_at, f.data::text AS data
FROM ((SELECT e.xid, e.id FROM claim_event AS e
        WHERE (e.xid, e.id) > ($1::text::xid8, $2)
          AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY e.xid, e.id LIMIT $3)
      UNION ALL
      (SELECT v.xid, v.id FROM coupon_event AS v
        WHERE (v.xid, v.id) > ($1::text::xid8, $2)
          AND v.xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY v.xid, v.id LIMIT $3)
      UNION ALL
      (SELECT g.xid, g.id FROM coupon_given_events AS g
        WHERE (g.xid, g.id) > ($1::text::xid8, $2)
          AND g.xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY g.xid, g.id LIMIT $3)
      ORDER BY 1, 2 LIMIT $3) AS page
CROSS JOIN LATERAL (SELECT * FROM event_feed AS one WHERE one.id = page.id OFFSET 0) AS f
ORDER BY page.xid, page.id;

-- name: coupon_events_after
-- events_after for one coupon ($4), through the ledgers' (coupon_id, xid, id) indexes.
SELECT f.id, f.xid::text AS xid, f.type, f.occurred_at, f.data::text AS data
FROM ((SELECT e.xid, e.id FROM claim_event AS e
        WHERE e.coupon_id = $4 AND (e.xid, e.id) > ($1::text::xid8, $2)
          AND e.xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY e.xid, e.id LIMIT $3)
      UNION ALL
      (SELECT v.xid, v.id FROM coupon_event AS v
        WHERE v.coupon_id = $4 AND (v.xid, v.id) > ($1::text::xid8, $2)
          AND v.xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY v.xid, v.id LIMIT $3)
      UNION ALL
      (SELECT g.xid, g.id FROM coupon_given_events AS g
        WHERE g.couponid::uuid = $4 AND (g.xid, g.id) > ($1::text::xid8, $2)
          AND g.xid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY g.xid, g.id LIMIT $3)
      ORDER BY 1, 2 LIMIT $3) AS page
CROSS JOIN LATERAL (SELECT * FROM event_feed AS one WHERE one.id = page.id OFFSET 0) AS f
ORDER BY page.xid, page.id;

-- name: feed_position_reached
-- Whether transaction id $1 has been handed out yet (a cursor ahead of it is not ours).
SELECT $1::text::xid8 < pg_snapshot_xmax(pg_current_snapshot());

-- name: insert_webhook
-- Register an endpoint ($1 url, $2 event types or NULL, $3 secret). It starts at the feed's
-- horizon now: it receives every event of the transactions that had not ended yet, and after.
INSERT INTO webhook_endpoint (url, event_types, secret, after_xid)
VALUES ($1, $2, $3, pg_snapshot_xmin(pg_current_snapshot()))
RETURNING id, url, event_types AS events, created_at, disabled_at, disabled_reason,
          failing_since, attempts AS failed_attempts, next_attempt_at;

-- name: list_webhooks
-- Every endpoint, oldest first (never its secret).
SELECT id, url, event_types AS events, created_at, disabled_at, disabled_reason,
       failing_since, attempts AS failed_attempts, next_attempt_at
FROM webhook_endpoint
ORDER BY created_at, id;

-- name: get_webhook
-- One endpoint (never its secret); no row: none has id $1.
SELECT id, url, event_types AS events, created_at, disabled_at, disabled_reason,
       failing_since, attempts AS failed_attempts, next_attempt_at
FROM webhook_endpoint
WHERE id = $1;

-- name: enable_webhook
-- Enable endpoint $1 ($2 true: its next event is tried at once, from its first attempt) or
-- disable it by hand ($2 false); where it stands in the feed is kept, so nothing is lost.
UPDATE webhook_endpoint
SET disabled_at     = CASE WHEN $2 THEN NULL ELSE coalesce(disabled_at, now()) END,
    disabled_reason = CASE WHEN $2 THEN NULL
                           ELSE coalesce(disabled_reason, 'disabled by the admin') END,
    attempts        = CASE WHEN $2 THEN 0 ELSE attempts END,
    failing_since   = CASE WHEN $2 THEN NULL ELSE failing_since END,
    next_attempt_at = CASE WHEN $2 THEN now() ELSE next_attempt_at END
WHERE id = $1
RETURNING id, url, event_types AS events, created_at, disabled_at, disabled_reason,
          failing_since, attempts AS failed_attempts, next_attempt_at;

-- name: rotate_webhook_secret
-- Give endpoint $1 the secret $2: every delivery from now on is signed with it.
UPDATE webhook_endpoint SET secret = $2 WHERE id = $1
RETURNING id, url, event_types AS events, created_at, disabled_at, disabled_reason,
          failing_since, attempts AS failed_attempts, next_attempt_at;

-- name: delete_webhook
-- Remove endpoint $1 and its delivery log; its id, or no row.
DELETE FROM webhook_endpoint WHERE id = $1 RETURNING id;

-- name: list_webhook_deliveries
-- Up to $3 attempts of endpoint $1 before attempt id $2 (NULL: the newest), newest first.
SELECT id, event_id, attempt, attempted_at, status_code, error, response, duration_ms
FROM webhook_delivery
WHERE endpoint_id = $1 AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3;

-- name: lease_webhook
-- Lease one endpoint for sender $1 for $2 seconds: enabled, due, not leased by a live sender,
-- with an event to send. SKIP LOCKED: senders of every process and host each take another.
-- A short statement, no transaction left open: a sender's xid never holds the feed back.
UPDATE webhook_endpoint AS w
SET leased_by = $1, leased_until = now() + make_interval(secs => $2)
WHERE w.id = (
    SELECT d.id FROM webhook_endpoint AS d
    WHERE d.disabled_at IS NULL AND d.next_attempt_at <= now()
      AND (d.leased_until IS NULL OR d.leased_until < now())
      -- Something to send: a ledger row after its position, below the horizon (an index
      -- probe into each ledger, as events_after reads them).
      AND (EXISTS (SELECT 1 FROM claim_event AS e
                   WHERE (e.xid, e.id) > (d.after_xid, d.after_id)
                     AND e.xid < pg_snapshot_xmin(pg_current_snapshot()))
           OR EXISTS (SELECT 1 FROM coupon_event AS v
                      WHERE (v.xid, v.id) > (d.after_xid, d.after_id)
                        AND v.xid < pg_snapshot_xmin(pg_current_snapshot()))
           OR EXISTS (SELECT 1 FROM coupon_given_events AS g
                      WHERE (g.xid, g.id) > (d.after_xid, d.after_id)
                        AND g.xid < pg_snapshot_xmin(pg_current_snapshot())))
    ORDER BY d.next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING w.id, w.url, w.event_types, w.secret, w.after_xid::text AS after_xid, w.after_id,
          w.attempts, w.failing_since;

-- name: finish_webhook_run
-- A sender's run on endpoint $1 is over: if sender $2 still holds the lease, the endpoint
-- moves to ($3 xid as text, $4 id), with $5 failed attempts of its next event, tried again
-- at $6, disabled with reason $7 (NULL: not), and the lease ends; the attempts made (arrays
-- $8 event ids .. $14 durations) are logged in any case. Whether the lease was still ours.
-- The run leased an enabled endpoint: one disabled meanwhile (by the admin) stays disabled.
WITH moved AS (
    UPDATE webhook_endpoint
    SET after_xid = $3::text::xid8, after_id = $4, attempts = $5,
        failing_since = CASE WHEN $5 = 0 THEN NULL ELSE coalesce(failing_since, now()) END,
        next_attempt_at = $6,
        disabled_at = coalesce(disabled_at, CASE WHEN $7::text IS NOT NULL THEN now() END),
        disabled_reason = coalesce(disabled_reason, $7),
        leased_by = NULL, leased_until = NULL
    WHERE id = $1 AND leased_by = $2
    RETURNING id),
logged AS (
    INSERT INTO webhook_delivery (endpoint_id, event_id, attempt, attempted_at, status_code,
                                  error, response, duration_ms)
    SELECT w.id, a.event_id, a.attempt, a.attempted_at, a.status_code, a.error, a.response,
           a.duration_ms
    FROM webhook_endpoint AS w
    CROSS JOIN unnest($8::bigint[], $9::integer[], $10::timestamptz[], $11::integer[],
                      $12::text[], $13::text[], $14::integer[])
                   AS a(event_id, attempt, attempted_at, status_code, error, response,
                        duration_ms)
    WHERE w.id = $1)
SELECT EXISTS (SELECT 1 FROM moved);

-- name: delete_old_webhook_deliveries
-- Forget up to $1 delivery attempts older than 30 days (a periodic sweep; returns the count).
WITH old AS (
    DELETE FROM webhook_delivery
    WHERE id IN (SELECT id FROM webhook_delivery
                 WHERE attempted_at < now() - interval '30 days'
                 LIMIT $1)
    RETURNING 1)
SELECT count(*) FROM old;
