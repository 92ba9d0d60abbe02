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
         WHERE couponid = $1::uuid::text AND starts_with(userid, $2) GROUP BY userid) AS per_user;

-- name: dashboard_coupons
-- The $1 newest coupons plus those in $2 (the active ones): what exists and what is left.
SELECT id, name, total_quantity, quantity
  FROM coupon
 WHERE id = ANY($2::uuid[])
    OR id IN (SELECT id FROM coupon ORDER BY created_at DESC, id LIMIT $1)
 ORDER BY created_at DESC, id;

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
-- Take the race lock for this session (true) or find it taken (false): one race at a time
-- per database, held until the session ends.
SELECT pg_try_advisory_lock($1);

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
-- Claim a coupon for each element of the arrays, in order; one row per element (see 0002).
SELECT ord, outcome, status, body
FROM claim_coupons_v1($1::uuid, $2::text[], $3::text[], $4::text[], $5::text[]);

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
INSERT INTO coupon (id, name, type, quantity, total_quantity, per_user_limit, starts_at, ends_at)
VALUES ($1, $2, $3, $4, $4, $5, $6, $7)
RETURNING id, name, type, total_quantity, quantity AS remaining, per_user_limit, starts_at,
          ends_at, paused, created_at, 0::bigint AS redeemed;

-- name: get_coupon
-- One coupon with its counts, without locking.
SELECT c.id, c.name, c.type, c.total_quantity, c.quantity AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM coupon c
WHERE c.id = $1;

-- name: all_coupons
-- Every coupon with its counts, in id order, without locking (v1's /all).
SELECT c.id, c.name, c.type, c.total_quantity, c.quantity AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM coupon c
ORDER BY c.id;

-- name: list_coupons
-- A page of coupons after the cursor ($1 created_at, $2 id), oldest first, at most $3.
SELECT c.id, c.name, c.type, c.total_quantity, c.quantity AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM coupon c
WHERE (c.created_at, c.id) > ($1, $2)
ORDER BY c.created_at, c.id
LIMIT $3;

-- name: update_coupon
-- Change a coupon: $2 total quantity, $3/$4 set starts_at, $5/$6 set ends_at, $7 paused,
-- $8 per-user limit (NULL / false: keep). The UPDATE takes the coupon's row lock, so it waits
-- for claimers in flight and moves `quantity` (what is left) by exactly the change of the
-- total: a total below what is claimed makes quantity negative, which the CHECK refuses
-- (coupon_quantity_not_negative) instead of losing claims. One row lock: no deadlock.
WITH changed AS (
    UPDATE coupon
    SET total_quantity = coalesce($2, total_quantity),
        quantity       = quantity + coalesce($2 - total_quantity, 0),
        starts_at      = CASE WHEN $3 THEN $4 ELSE starts_at END,
        ends_at        = CASE WHEN $5 THEN $6 ELSE ends_at END,
        paused         = coalesce($7, paused),
        per_user_limit = coalesce($8, per_user_limit)
    WHERE id = $1
    RETURNING *)
SELECT c.id, c.name, c.type, c.total_quantity, c.quantity AS remaining, c.per_user_limit,
       c.starts_at, c.ends_at, c.paused, c.created_at,
       (SELECT count(*) FROM claim r WHERE r.coupon_id = c.id AND r.status = 'redeemed') AS redeemed
FROM changed c;

-- name: get_claim
-- One claim by id, without locking.
SELECT id, coupon_id, user_id, code, status, claimed_at, released_at, redeemed_at
FROM claim
WHERE id = $1;

-- name: list_claims_of_coupon
-- A page of a coupon's claims after the cursor ($2 claimed_at, $3 id), oldest first, at most $4.
SELECT id, coupon_id, user_id, code, status, claimed_at, released_at, redeemed_at
FROM claim
WHERE coupon_id = $1 AND (claimed_at, id) > ($2, $3)
ORDER BY claimed_at, id
LIMIT $4;

-- name: list_claims_of_user
-- A page of a user's claims after the cursor ($2 claimed_at, $3 id), oldest first, at most $4.
SELECT id, coupon_id, user_id, code, status, claimed_at, released_at, redeemed_at
FROM claim
WHERE user_id = $1 AND (claimed_at, id) > ($2, $3)
ORDER BY claimed_at, id
LIMIT $4;

-- name: claim_user
-- Who holds a claim (NULL: no such claim); a user token may release its own claims only.
SELECT user_id FROM claim WHERE id = $1;

-- name: release_claim
-- Give a claim back (locks coupon row -> claim row, see release_claim_v1); one row.
SELECT outcome FROM release_claim_v1($1);

-- name: redeem_claim
-- Spend a code exactly once (locks the claim row, see redeem_claim_v1); one row.
SELECT outcome, claim_id FROM redeem_claim_v1($1);

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
