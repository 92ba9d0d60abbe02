-- The schema as it stands: every table with all its columns, then the indexes, the functions
-- and the triggers. This file is the readable truth; it is never applied to a real
-- database. The ordered migrations in src/couponapi/db/sql/migrations/ are what build and
-- upgrade databases, and tests/integration/test_schema.py proves they build exactly this
-- schema (it compares pg_dump of a database built from this file with one built from them).
-- Change the schema with a new migration, then bring this file up to date.
--
-- v1 is the original API: coupon, coupon_given_events and give_coupon_to_user keep the
-- original project's names and arguments. v2 is the current API: real users, a per-user
-- limit, a claim window, pause, codes, release, redemption, idempotent retries, and a ledger
-- of every change. Every rule lives here, in PostgreSQL, so it holds across any number of
-- server processes.

-- ---- tables ------------------------------------------------------------------------------

-- A coupon: how many exist, how many are left, and the rules of claiming it.
CREATE TABLE coupon
(
    id             uuid        NOT NULL
        CONSTRAINT coupon_pk PRIMARY KEY,
    name           text,
    type           text        NOT NULL,
    -- What is left to give. Every safe strategy decrements it under a row lock (v1's give
    -- paths and v2's claim paths alike); the check makes an oversell by "quantity - 1"
    -- impossible even for a buggy path.
    quantity       integer     NOT NULL
        CONSTRAINT coupon_quantity_not_negative CHECK (quantity >= 0),
    -- What exists in all, so claimed = total_quantity - quantity. An insert that names only
    -- quantity gets total_quantity = quantity from the trigger at the end of this file.
    total_quantity integer     NOT NULL,
    -- How many live claims of this coupon one user may hold.
    per_user_limit integer     NOT NULL DEFAULT 1
        CONSTRAINT coupon_per_user_limit_positive CHECK (per_user_limit >= 1),
    -- The claim window, [starts_at, ends_at); NULL leaves that side open.
    starts_at      timestamptz,
    ends_at        timestamptz,
    paused         boolean     NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- How long a claim holds its unit (NULL: for ever). A claim not redeemed by its
    -- expires_at is expired and gives the unit back; at most 30 days.
    hold_seconds   integer
        CONSTRAINT coupon_hold_seconds_range CHECK (hold_seconds BETWEEN 1 AND 2592000),
    -- A release gives one back (quantity + 1): never more back than exists.
    CONSTRAINT coupon_quantity_within_total CHECK (quantity <= total_quantity),
    CONSTRAINT coupon_window_ordered CHECK (starts_at < ends_at)
);
-- The original also had "create unique index coupon_id_uindex on coupon (id)": it duplicates
-- the primary key's index, costs a write on every insert, and is left out.

-- The ids of every ledger's events (v1's coupon_given_events, v2's claim_event, coupon_event):
-- unique across them, and with the xid of the transaction that wrote it, an event's id orders
-- the feed (GET /api/v2/events).
CREATE SEQUENCE event_id_seq;

-- v1's ledger of grants: one row per coupon given, written in the transaction that gives it.
-- In the feed as coupon.given.
CREATE TABLE coupon_given_events
(
    id          bigint      NOT NULL DEFAULT nextval('event_id_seq')
        CONSTRAINT coupon_given_events_pk PRIMARY KEY,
    couponid    text        NOT NULL,
    userid      text        NOT NULL,
    newquantity integer     NOT NULL,
    given_at    timestamptz NOT NULL DEFAULT now(),
    -- As claim_event.xid: the writing transaction's id, for the feed.
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id()
);

-- One coupon held by one user. 'claimed' and 'redeemed' are live (they count against the
-- quantity and the per-user limit); 'released' gave the coupon back, and so did 'expired'
-- (a claim not redeemed by its expires_at). A 'claimed' row past its expires_at is expired
-- already (every reader says so, every claim path may take its unit); the sweeper marks it.
CREATE TABLE claim
(
    id          uuid        NOT NULL
        CONSTRAINT claim_pk PRIMARY KEY,
    coupon_id   uuid        NOT NULL
        CONSTRAINT claim_coupon_fk REFERENCES coupon (id),
    user_id     text        NOT NULL,
    -- Random (made by Python's `secrets`), never derived from an id; what the user types.
    code        text        NOT NULL
        CONSTRAINT claim_code_unique UNIQUE,
    status      text        NOT NULL DEFAULT 'claimed'
        CONSTRAINT claim_status_known
            CHECK (status IN ('claimed', 'released', 'redeemed', 'expired')),
    claimed_at  timestamptz NOT NULL,
    released_at timestamptz,
    redeemed_at timestamptz,
    -- claimed_at + the coupon's hold_seconds when it was granted (NULL: never expires); never
    -- moved afterwards.
    expires_at  timestamptz
);

-- The v2 ledger: one row per grant, release, redemption and expiry, written in the transaction
-- that makes the change (coupon_given_events stays v1's ledger of grants). An expiry's row is
-- written by whoever marks the claim expired (a claim path, a release, the sweeper), with the
-- hold's expires_at as its occurred_at. With coupon_event it is the event feed.
CREATE TABLE claim_event
(
    id          bigint      NOT NULL DEFAULT nextval('event_id_seq')
        CONSTRAINT claim_event_pk PRIMARY KEY,
    claim_id    uuid        NOT NULL
        CONSTRAINT claim_event_claim_fk REFERENCES claim (id),
    coupon_id   uuid        NOT NULL,
    user_id     text        NOT NULL,
    kind        text        NOT NULL
        CONSTRAINT claim_event_kind_known
            CHECK (kind IN ('granted', 'released', 'redeemed', 'expired')),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    -- The writing transaction's id: the feed lists only events of transactions that ended
    -- (below its snapshot's xmin), in (xid, id) order, so it never skips one. Rows written
    -- before the feed existed have 3 (the first normal xid): they come first, in id order.
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id()
);
ALTER SEQUENCE event_id_seq OWNED BY claim_event.id;

-- A coupon's changes: created, updated (a PATCH, or any change of its rules or total) and
-- sold_out (what is left reached 0 with no hold due), written by the triggers at the end of
-- this file. `data` is the coupon as the API showed it at that instant, kept because its
-- counts cannot be read back later (json, not jsonb: its fields stay in the API's order, as
-- in every event's data).
CREATE TABLE coupon_event
(
    id          bigint      NOT NULL DEFAULT nextval('event_id_seq')
        CONSTRAINT coupon_event_pk PRIMARY KEY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    coupon_id   uuid        NOT NULL,
    kind        text        NOT NULL
        CONSTRAINT coupon_event_kind_known CHECK (kind IN ('created', 'updated', 'sold_out')),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data        json        NOT NULL
);

-- Idempotent retries: the first answer (status and body, failures included) to a key, kept at
-- least 24 hours. request_hash is the hash of what was asked (coupon and user): the same key
-- with another request is refused. claim_coupons_v1 deletes an expired key when it is used
-- again; delete_expired_idempotency_keys (queries.sql) sweeps the rest periodically.
CREATE TABLE idempotency_key
(
    key          text        NOT NULL
        CONSTRAINT idempotency_key_pk PRIMARY KEY,
    request_hash text        NOT NULL,
    status       integer,
    body         jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- API keys for servers and admins (docs/identity.md): only the SHA-256 of a key is stored,
-- under a lookup id that names the row. A revoked key keeps its row; its name may be reused.
CREATE TABLE api_key
(
    id         bigint      GENERATED ALWAYS AS IDENTITY
        CONSTRAINT api_key_pk PRIMARY KEY,
    name       text        NOT NULL
        CONSTRAINT api_key_name_valid CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    lookup     text        NOT NULL
        CONSTRAINT api_key_lookup_unique UNIQUE,
    digest     bytea       NOT NULL
        CONSTRAINT api_key_digest_sha256 CHECK (length(digest) = 32),
    scope      text        NOT NULL
        CONSTRAINT api_key_scope_known CHECK (scope IN ('server', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- An endpoint that receives the feed: its URL, the event types it wants (NULL: all), its
-- Standard Webhooks secret, and where it stands in the feed. after_xid/after_id is the last
-- event delivered to it (or passed over); `attempts` the failed attempts of the next one,
-- retried at next_attempt_at. A sender leases the endpoint (leased_by until leased_until)
-- for one run of deliveries, with no transaction open meanwhile.
CREATE TABLE webhook_endpoint
(
    id              uuid        NOT NULL DEFAULT gen_random_uuid()
        CONSTRAINT webhook_endpoint_pk PRIMARY KEY,
    url             text        NOT NULL,
    event_types     text[],
    secret          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz,
    disabled_reason text,
    after_xid       xid8        NOT NULL,
    after_id        bigint      NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0,
    failing_since   timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_by       text,
    leased_until    timestamptz
);

-- Every attempt to deliver an event to an endpoint: the HTTP status, or the error, and a
-- bounded excerpt of the answer.
CREATE TABLE webhook_delivery
(
    id           bigint      GENERATED ALWAYS AS IDENTITY
        CONSTRAINT webhook_delivery_pk PRIMARY KEY,
    endpoint_id  uuid        NOT NULL
        CONSTRAINT webhook_delivery_endpoint_fk REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_id     bigint      NOT NULL,
    attempt      integer     NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    error        text,
    response     text,
    duration_ms  integer     NOT NULL
);

-- ---- indexes -----------------------------------------------------------------------------

-- Cursor pagination of the coupons, oldest first.
CREATE INDEX coupon_created_idx ON coupon (created_at, id);
-- v1's grants of a coupon (the audit), and its feed, by the uuid the text column holds.
CREATE INDEX coupon_given_events_couponid_idx
    ON coupon_given_events ((couponid::uuid), xid, id);
CREATE INDEX coupon_given_events_feed_idx ON coupon_given_events (xid, id);
-- The per-user limit counts a user's live claims on one coupon through this index.
CREATE INDEX claim_coupon_user_idx ON claim (coupon_id, user_id);
-- Cursor pagination: a coupon's claims and a user's claims, oldest first.
CREATE INDEX claim_coupon_claimed_idx ON claim (coupon_id, claimed_at, id);
CREATE INDEX claim_user_claimed_idx ON claim (user_id, claimed_at, id);
-- A coupon's `redeemed` count reads only the redeemed claims.
CREATE INDEX claim_redeemed_idx ON claim (coupon_id) WHERE status = 'redeemed';
-- The live holds, by coupon and expiry: a claim path finds a coupon's due holds (oldest
-- first) with one range scan, the sweeper finds the coupons that have any, and a coupon's
-- `remaining` counts its due holds. Only claims that can expire are in it: a coupon without
-- hold_seconds pays nothing for it.
CREATE INDEX claim_hold_idx ON claim (coupon_id, expires_at)
    WHERE status = 'claimed' AND expires_at IS NOT NULL;
-- A coupon's expired count (the dashboard, the audit) reads only the expired claims.
CREATE INDEX claim_expired_idx ON claim (coupon_id) WHERE status = 'expired';
-- The feed's order, and a coupon's feed (which also serves the audit's counts per coupon).
CREATE INDEX claim_event_feed_idx ON claim_event (xid, id);
CREATE INDEX claim_event_coupon_idx ON claim_event (coupon_id, xid, id);
CREATE INDEX coupon_event_feed_idx ON coupon_event (xid, id);
CREATE INDEX coupon_event_coupon_idx ON coupon_event (coupon_id, xid, id);
CREATE INDEX webhook_delivery_endpoint_idx ON webhook_delivery (endpoint_id, id);
CREATE INDEX webhook_delivery_attempted_idx ON webhook_delivery (attempted_at);
CREATE INDEX claim_event_claim_idx ON claim_event (claim_id);
CREATE INDEX idempotency_key_created_idx ON idempotency_key (created_at);
-- One live key per name: `keys revoke NAME` names exactly one.
CREATE UNIQUE INDEX api_key_live_name_idx ON api_key (name) WHERE revoked_at IS NULL;

-- ---- v1: give a coupon -------------------------------------------------------------------

-- The original function, same name and arguments. Two changes: it returns the new quantity
-- (a caller that ignores the result still works), and an unknown coupon raises
-- no_data_found instead of 'Coupon run out!', so the API can answer 404 rather than 409.
CREATE FUNCTION give_coupon_to_user(couponId uuid, userId text) RETURNS integer AS
$$
declare
    quantity_of_coupon integer;
begin
    -- FOR UPDATE: every giver of this coupon queues here, so the check below reads the
    -- quantity left by the previous committed giver and cannot oversell; one row lock per
    -- transaction means no lock-order cycle, so no deadlock.
    select quantity
    into quantity_of_coupon
    from coupon
    WHERE id = couponId
    FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION 'Coupon not found!' USING ERRCODE = 'no_data_found';
    END IF;

    IF quantity_of_coupon >= 1 THEN
        UPDATE coupon
        SET quantity = quantity - 1
        WHERE id = couponId;

        INSERT INTO coupon_given_events(CouponId, UserId, NewQuantity)
        VALUES (couponId, userId, quantity_of_coupon - 1);
        RETURN quantity_of_coupon - 1;
    ELSE
        RAISE EXCEPTION 'Coupon run out!';
    end if;
end;
$$ LANGUAGE plpgsql;

-- Group commit for v1: give one coupon to a whole batch of users in one transaction.
-- The caller (the v1 group-commit strategy) gathers concurrent claims in arrival order;
-- this function grants them in that order until the coupon runs out and answers one row per
-- input, in input order: ('granted', quantity left after that grant), ('sold_out', 0) or
-- ('not_found', NULL). One ledger row per grant, written in the same transaction.
CREATE FUNCTION give_coupons_to_users(coupon_id uuid, user_ids text[])
    RETURNS TABLE (outcome text, quantity_left integer) AS
$$
declare
    available integer;
    granted   integer;
begin
    -- A plain read first, no lock: a sold-out or unknown coupon is refused without taking
    -- the row lock or writing anything, so a crowd at a sold-out coupon never queues.
    -- Refusing on this snapshot is safe: quantity was 0 when it was taken, and the claim is
    -- ordered at that moment (a later release or PATCH is a later event).
    select c.quantity into available from coupon c where c.id = coupon_id;
    if not found or available = 0 then
        return query select case when found then 'sold_out' else 'not_found' end,
                            case when found then 0 end
                     from unnest(user_ids);
        return;
    end if;

    -- FOR UPDATE: concurrent batches (other processes, other machines) queue here, so the
    -- quantity read below is the one the previous committed batch left, and the whole batch
    -- is decided against it: at most `available` grants, never an oversell. One row lock
    -- per transaction, so no lock-order cycle and no deadlock.
    select c.quantity into available from coupon c where c.id = coupon_id for update;
    if not found then  -- deleted since the plain read
        return query select 'not_found'::text, null::integer from unnest(user_ids);
        return;
    end if;

    granted := least(available, coalesce(cardinality(user_ids), 0));  -- NULL array: none
    if granted > 0 then
        update coupon c set quantity = c.quantity - granted where c.id = coupon_id;
        insert into coupon_given_events (couponid, userid, newquantity)
        select coupon_id::text, t.user_id, available - t.n::integer
        from unnest(user_ids[1:granted]) with ordinality as t(user_id, n)
        order by t.n;
    end if;

    -- Arrival order decides who is served when the batch is larger than what is left.
    return query
        select case when t.n <= granted then 'granted' else 'sold_out' end,
               case when t.n <= granted then available - t.n::integer else 0 end
        from unnest(user_ids) with ordinality as t(user_id, n)
        order by t.n;
end;
$$ LANGUAGE plpgsql;

-- ---- v2: claim, release, redeem ----------------------------------------------------------

-- ISO 8601 in UTC with a Z, whatever the session's TimeZone.
CREATE FUNCTION iso_utc_v1(p_at timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$
SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The answer every claim of p_coupon (its row, all NULL when there is none) gets at p_now
-- when p_left of it are left, whoever asks: not_found, not_active (paused or outside the
-- window) or sold_out, checked in that order; NULL when a claim may be granted.
CREATE FUNCTION claim_refusal_v1(p_coupon_id uuid, p_coupon coupon, p_left integer,
                                 p_now timestamptz)
    RETURNS jsonb
    LANGUAGE sql STABLE PARALLEL SAFE AS
$$
SELECT CASE
    WHEN p_coupon.id IS NULL THEN jsonb_build_object('outcome', 'not_found', 'detail',
        format('coupon %s not found', p_coupon_id))
    WHEN p_coupon.paused THEN jsonb_build_object('outcome', 'not_active', 'detail',
        format('coupon %s is paused', p_coupon_id))
    WHEN p_now < p_coupon.starts_at THEN jsonb_build_object('outcome', 'not_active', 'detail',
        format('coupon %s opens at %s', p_coupon_id, iso_utc_v1(p_coupon.starts_at)))
    WHEN p_now >= p_coupon.ends_at THEN jsonb_build_object('outcome', 'not_active', 'detail',
        format('coupon %s closed at %s', p_coupon_id, iso_utc_v1(p_coupon.ends_at)))
    WHEN p_left < 1 THEN jsonb_build_object('outcome', 'sold_out', 'detail',
        format('coupon %s has run out', p_coupon_id))
END
$$;

-- Claim one coupon for each element of the arrays, in their order (arrival order), in one
-- transaction: the one-at-a-time path calls it with arrays of one, a group-commit batcher
-- with many. Element i asks for p_coupon_id on behalf of p_user_ids[i], with p_codes[i] as
-- its code if granted and p_idempotency_keys[i] / p_request_hashes[i] (both NULL: no key).
-- One row per element: ord (1-based), outcome, status (HTTP), body (the answer).
--   granted       201, body is the claim
--   replayed      the key was answered before (another transaction, or an earlier element
--                 of this batch): that answer's status and body, failures included
--   sold_out      409    limit_reached 409    not_active 409 (paused or outside the window)
--   not_found     404    key_conflict  422 (the key was used for another request; not stored)
-- Failure bodies are {"outcome", "detail"}; every answer to a key is stored for replay.
-- A refusal that holds for everyone is answered from a plain read, with no lock and no
-- write, when no key needs storing; otherwise one statement decides the whole batch, then
-- the claims, the quantity and the keys' answers are written set-based.
CREATE FUNCTION claim_coupons_v1(
    p_coupon_id uuid,
    p_user_ids text[],
    p_codes text[],
    p_idempotency_keys text[],
    p_request_hashes text[],
    p_now timestamptz DEFAULT now()
)
    RETURNS TABLE (ord integer, outcome text, status integer, body jsonb)
    LANGUAGE plpgsql
    -- Plan each statement once per connection. Left to choose, PostgreSQL re-plans the
    -- batch statement on a connection's first five calls, and may keep re-planning small
    -- batches (whose custom plans look cheaper): that costs more than deciding the batch,
    -- and the plan does not depend on the arguments' values.
    SET plan_cache_mode = force_generic_plan AS
$$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(p_user_ids), 0);
    v_keyed      boolean := coalesce(cardinality(array_remove(p_idempotency_keys, NULL)), 0) > 0;
    v_coupon     coupon%ROWTYPE;
    v_refusal    jsonb;             -- the answer of every deciding element, if any
    v_none_left  jsonb;             -- the answer once the batch has taken what was left
    v_mine       text[]  := '{}';   -- keys this call reserved
    v_stored     jsonb   := '{}';   -- key -> {hash, status, body}: answered before
    v_claimed_at text;              -- p_now as a grant's claimed_at
    -- Element i's answer, and the id of its claim if it was granted one (else NULL).
    v_outcomes   text[];
    v_statuses   integer[];
    v_bodies     jsonb[];
    v_ids        uuid[];
    v_granted    integer;
BEGIN
    IF coalesce(cardinality(p_codes), 0) <> n
        OR coalesce(cardinality(p_idempotency_keys), 0) <> n
        OR coalesce(cardinality(p_request_hashes), 0) <> n THEN
        RAISE EXCEPTION 'claim_coupons_v1: the four arrays must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF NOT v_keyed THEN
        -- A plain read first, no lock: with no key there is nothing to store, so a coupon that
        -- refuses everyone is answered with no row lock, no write and no xid, and a crowd at a
        -- sold-out coupon never queues. Refusing on this snapshot is safe: the coupon could not
        -- be claimed when it was taken, and the claim is ordered at that moment (a later
        -- release or PATCH is a later event).
        SELECT * INTO v_coupon FROM coupon WHERE id = p_coupon_id;
        v_refusal := claim_refusal_v1(p_coupon_id, v_coupon, v_coupon.quantity, p_now);
        IF v_refusal IS NOT NULL THEN
            RETURN QUERY
                SELECT e.ord::integer, v_refusal ->> 'outcome',
                       CASE WHEN v_coupon.id IS NULL THEN 404 ELSE 409 END, v_refusal
                FROM unnest(p_user_ids) WITH ORDINALITY AS e(user_id, ord)
                ORDER BY e.ord;
            RETURN;
        END IF;
    END IF;

    -- THE LOCK. Every path that creates or releases a claim locks the coupon row first, so
    -- they queue here one at a time: v_coupon.quantity below is what the previous holder
    -- committed and cannot oversell. Under READ COMMITTED each later statement (in PL/pgSQL
    -- too) takes a fresh snapshot, so the count of the users' live claims below sees every
    -- claim committed before we got the lock: the per-user limit cannot be exceeded either.
    -- Lock order is always coupon row -> idempotency keys (sorted) -> claim rows, so no
    -- deadlock. NO KEY UPDATE is what an UPDATE of quantity takes anyway; it leaves
    -- foreign-key checks (claim inserts) unblocked.
    SELECT * INTO v_coupon FROM coupon WHERE id = p_coupon_id FOR NO KEY UPDATE;
    v_refusal := claim_refusal_v1(p_coupon_id, v_coupon, v_coupon.quantity, p_now);
    v_none_left := claim_refusal_v1(p_coupon_id, v_coupon, 0, p_now);
    v_claimed_at := iso_utc_v1(p_now);

    IF v_keyed THEN
        -- A key older than 24 hours is forgotten, so a client may use it again.
        DELETE FROM idempotency_key
        WHERE key = ANY (p_idempotency_keys) AND created_at < p_now - interval '24 hours';
        -- Reserve the keys in sorted order (two batches never wait on each other's keys in a
        -- cycle). A key another transaction is writing makes this INSERT wait for it; once it
        -- committed, ON CONFLICT skips the key and the SELECT after it (a fresh snapshot)
        -- reads that transaction's stored answer. A key it rolled back is ours.
        WITH reserved AS (
            INSERT INTO idempotency_key (key, request_hash, created_at)
            SELECT k, h, p_now
            FROM (SELECT DISTINCT ON (k) k, h
                  FROM unnest(p_idempotency_keys, p_request_hashes)
                           WITH ORDINALITY AS e(k, h, i)
                  WHERE k IS NOT NULL
                  ORDER BY k, i) AS firsts
            ORDER BY k
            ON CONFLICT (key) DO NOTHING
            RETURNING key)
        SELECT coalesce(array_agg(key), '{}') INTO v_mine FROM reserved;
        SELECT coalesce(jsonb_object_agg(
                   key, jsonb_build_object('hash', request_hash, 'status', status, 'body', body)),
               '{}')
        INTO v_stored
        FROM idempotency_key
        WHERE key = ANY (p_idempotency_keys) AND NOT key = ANY (v_mine);
    END IF;

    -- Decide the whole batch in one statement, one CTE per rule.
    WITH element AS (
        -- ord is arrival order. An element whose key has a stored answer replays it; the
        -- first element of any other key decides, and the key's later elements replay that
        -- decision (decided_by); an element without a key decides for itself.
        SELECT e.ord::integer AS ord, e.user_id, e.code, e.key, e.hash,
               v_stored -> e.key AS stored,
               CASE WHEN e.key IS NULL THEN e.ord::integer
                    WHEN NOT v_stored ? e.key THEN array_position(p_idempotency_keys, e.key)
               END AS decided_by
        FROM unnest(p_user_ids, p_codes, p_idempotency_keys, p_request_hashes)
                 WITH ORDINALITY AS e(user_id, code, key, hash, ord)
    ),
    fit AS (
        -- held: the user's committed live claims, counted after the lock (see THE LOCK), by
        -- one index probe; not needed when everyone is refused. A user's n-th deciding
        -- element fits the per-user limit when held + n <= limit. Earlier ones count whether
        -- granted or not: one that was not granted was over the limit (so is this one) or
        -- came when nothing was left (so does this one).
        SELECT e.ord, e.user_id, e.code, e.hash, l.held,
               l.held + row_number() OVER (PARTITION BY e.user_id ORDER BY e.ord)
                   <= v_coupon.per_user_limit AS fits
        FROM element AS e
        CROSS JOIN LATERAL (
            SELECT count(*)::integer AS held
            FROM claim AS c
            WHERE v_refusal IS NULL
              AND c.coupon_id = p_coupon_id
              AND c.user_id = e.user_id
              AND c.status <> 'released') AS l
        WHERE e.decided_by = e.ord
    ),
    decided AS (
        -- Against what is left, in arrival order: the batch took one for every earlier
        -- element that fits (one over its limit takes nothing). Sold out is checked before
        -- the limit, as it always was.
        SELECT f.*,
               CASE WHEN v_refusal IS NOT NULL THEN v_refusal ->> 'outcome'
                    WHEN count(*) FILTER (WHERE f.fits) OVER (
                             ORDER BY f.ord ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                         >= v_coupon.quantity THEN 'sold_out'
                    WHEN f.fits THEN 'granted'
                    ELSE 'limit_reached'
               END AS outcome
        FROM fit AS f
    ),
    answer AS (
        -- The deciding elements' answers; a grant's claim id is drawn here, once.
        SELECT d.ord, d.hash, d.outcome, g.id,
               CASE d.outcome WHEN 'granted' THEN 201 WHEN 'not_found' THEN 404 ELSE 409 END
                   AS status,
               CASE d.outcome
                   WHEN 'granted' THEN jsonb_build_object(
                       'id', g.id, 'coupon_id', p_coupon_id, 'user_id', d.user_id,
                       'code', d.code, 'status', 'claimed', 'claimed_at', v_claimed_at)
                   -- Only a user at the limit or over it gets here: what they hold is the
                   -- larger of held and the limit (held + this batch's grants).
                   WHEN 'limit_reached' THEN jsonb_build_object(
                       'outcome', 'limit_reached',
                       'detail', format(
                           'user %s already holds %s claim(s) of coupon %s (the limit)',
                           d.user_id, greatest(d.held, v_coupon.per_user_limit), p_coupon_id))
                   ELSE coalesce(v_refusal, v_none_left)
               END AS body
        FROM decided AS d
        CROSS JOIN LATERAL (SELECT CASE WHEN d.outcome = 'granted' THEN gen_random_uuid() END
                                       AS id) AS g
    ),
    reply AS (
        -- Every element: its own answer, or the answer its key already has (decided earlier
        -- in this batch, or stored): replayed for the same request, else key_conflict (which
        -- is not stored).
        SELECT e.ord, a.id,
               CASE WHEN a.ord = e.ord THEN a.outcome
                    WHEN p.same THEN 'replayed' ELSE 'key_conflict' END AS outcome,
               CASE WHEN a.ord = e.ord THEN a.status WHEN p.same THEN p.status ELSE 422 END
                   AS status,
               CASE WHEN a.ord = e.ord THEN a.body
                    WHEN p.same THEN p.body
                    ELSE jsonb_build_object('outcome', 'key_conflict', 'detail',
                                            'this Idempotency-Key was used for another request')
               END AS body
        FROM element AS e
        LEFT JOIN answer AS a ON a.ord = e.decided_by
        CROSS JOIN LATERAL (
            SELECT coalesce(a.hash, e.stored ->> 'hash') IS NOT DISTINCT FROM e.hash AS same,
                   coalesce(a.status, (e.stored ->> 'status')::integer) AS status,
                   coalesce(a.body, e.stored -> 'body') AS body) AS p
    )
    SELECT array_agg(r.outcome ORDER BY r.ord), array_agg(r.status ORDER BY r.ord),
           array_agg(r.body ORDER BY r.ord),
           array_agg(CASE WHEN r.outcome = 'granted' THEN r.id END ORDER BY r.ord),
           count(*) FILTER (WHERE r.outcome = 'granted')
    INTO v_outcomes, v_statuses, v_bodies, v_ids, v_granted
    FROM reply AS r;

    IF v_granted > 0 THEN
        INSERT INTO claim (id, coupon_id, user_id, code, status, claimed_at)
        SELECT g.id, p_coupon_id, g.user_id, g.code, 'claimed', p_now
        FROM unnest(v_ids, p_user_ids, p_codes) WITH ORDINALITY AS g(id, user_id, code, i)
        WHERE g.id IS NOT NULL
        ORDER BY g.i;
        INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
        SELECT g.id, p_coupon_id, g.user_id, 'granted', p_now
        FROM unnest(v_ids, p_user_ids) WITH ORDINALITY AS g(id, user_id, i)
        WHERE g.id IS NOT NULL
        ORDER BY g.i;
        UPDATE coupon SET quantity = quantity - v_granted WHERE id = p_coupon_id;
    END IF;
    IF cardinality(v_mine) > 0 THEN
        -- The answers to the keys this call reserved, for replay: each key's deciding element.
        UPDATE idempotency_key AS k
        SET status = a.status, body = a.body
        FROM unnest(p_idempotency_keys, v_outcomes, v_statuses, v_bodies)
                 AS a(key, outcome, status, body)
        WHERE k.key = a.key
          AND k.key = ANY (v_mine)
          AND a.outcome NOT IN ('replayed', 'key_conflict');
    END IF;

    RETURN QUERY
        SELECT a.i::integer, a.outcome, a.status, a.body
        FROM unnest(v_outcomes, v_statuses, v_bodies)
                 WITH ORDINALITY AS a(outcome, status, body, i)
        ORDER BY a.i;
END;
$$;

-- Give a claim back: its coupon returns to what is left. Outcomes: released (body is the
-- claim), not_found, already_released, already_redeemed (nothing changes for those).
CREATE FUNCTION release_claim_v1(p_claim_id uuid, p_now timestamptz DEFAULT now())
    RETURNS TABLE (outcome text, claim_status text, coupon_id uuid)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    v_coupon_id uuid;
    v_status    text;
    v_user      text;
BEGIN
    -- A claim's coupon never changes, so reading it without a lock is safe.
    SELECT c.coupon_id INTO v_coupon_id FROM claim AS c WHERE c.id = p_claim_id;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    -- Lock order coupon row -> claim row, as in claim_coupons_v1: no deadlock. Holding the
    -- coupon row, the quantity we give back cannot race a grant: no oversell.
    PERFORM 1 FROM coupon WHERE id = v_coupon_id FOR NO KEY UPDATE;
    -- The claim row lock: a second release (or a redemption) waits, then reads our status.
    SELECT c.status, c.user_id INTO v_status, v_user
    FROM claim AS c WHERE c.id = p_claim_id FOR UPDATE;
    coupon_id := v_coupon_id;
    claim_status := v_status;
    IF v_status <> 'claimed' THEN
        outcome := 'already_' || v_status;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE claim SET status = 'released', released_at = p_now WHERE id = p_claim_id;
    UPDATE coupon SET quantity = quantity + 1 WHERE id = v_coupon_id;
    INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
    VALUES (p_claim_id, v_coupon_id, v_user, 'released', p_now);
    outcome := 'released';
    claim_status := 'released';
    RETURN NEXT;
END;
$$;

-- Spend a code, exactly once. Outcomes: redeemed, not_found, already_redeemed,
-- already_released; the claim's id comes back with every outcome but not_found.
CREATE FUNCTION redeem_claim_v1(p_code text, p_now timestamptz DEFAULT now())
    RETURNS TABLE (outcome text, claim_id uuid)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    v_claim claim%ROWTYPE;
BEGIN
    -- The claim row lock only: redeeming changes neither what is left nor the live claims, so
    -- the coupon row is not needed. Parallel redeemers of one code queue here; each later one
    -- reads the committed 'redeemed' and is refused: exactly one succeeds. One row lock, last
    -- in the coupon -> claim order: no deadlock.
    SELECT * INTO v_claim FROM claim AS c WHERE c.code = p_code FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    claim_id := v_claim.id;
    IF v_claim.status <> 'claimed' THEN
        outcome := 'already_' || v_claim.status;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE claim SET status = 'redeemed', redeemed_at = p_now WHERE id = v_claim.id;
    INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
    VALUES (v_claim.id, v_claim.coupon_id, v_claim.user_id, 'redeemed', p_now);
    outcome := 'redeemed';
    RETURN NEXT;
END;
$$;

-- ---- v2 with holds that expire (migration 0006) -------------------------------------------
-- claim_coupons_v2, release_claim_v2 and redeem_claim_v2 are what the service calls; the v1
-- functions above stay for servers of the previous version during a rolling upgrade (they
-- never oversell, but know nothing of holds). Every path that gives a unit back by expiry
-- holds the coupon row lock: expire_holds_v1 says why that cannot count a unit twice.

-- How many of a coupon's holds are due at p_now but not yet marked expired (claim_hold_idx):
-- what is left as of now is coupon.quantity plus these.
CREATE FUNCTION due_holds_v1(p_coupon_id uuid, p_now timestamptz)
    RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE AS
$$
SELECT count(*)::integer
FROM claim AS c
WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
  AND c.expires_at IS NOT NULL AND c.expires_at <= p_now
$$;

-- Expire due holds of one coupon: those of p_user_ids, and up to p_oldest more, oldest
-- first; each becomes 'expired' with its ledger row, and its unit goes back to what is left.
-- How many were expired.
CREATE FUNCTION expire_holds_v1(p_coupon_id uuid, p_user_ids text[], p_oldest integer,
                                p_now timestamptz)
    RETURNS integer
    LANGUAGE plpgsql AS
$$
DECLARE
    v_expired integer;
BEGIN
    -- THE CALLER HOLDS THE COUPON ROW LOCK (claim_coupons_v2, change_coupon_v1,
    -- sweep_holds_v1): nobody else can grant, release or expire a claim of this coupon
    -- meanwhile, so the units given back below cannot be counted twice, and the claim rows
    -- come after the coupon row, as in every path: no deadlock.
    -- FOR UPDATE SKIP LOCKED on the claim rows: the only other holder of a claim row lock
    -- without the coupon lock is a redeemer (redeem_claim_v2), who decides that claim one way
    -- or the other; we leave it to it and never wait. A row that changed since our snapshot
    -- is re-checked on its committed version (READ COMMITTED), so a claim redeemed or
    -- released a moment ago is not expired: no claim ends two ways.
    WITH mine AS (
        -- The due holds of the users about to claim: they must not count against the limit.
        SELECT c.id FROM claim AS c
        WHERE c.coupon_id = p_coupon_id AND c.user_id = ANY (p_user_ids)
          AND c.status = 'claimed' AND c.expires_at <= p_now
        FOR UPDATE SKIP LOCKED),
    oldest AS (
        -- Up to p_oldest more, oldest first, through claim_hold_idx.
        SELECT c.id FROM claim AS c
        WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
          AND c.expires_at IS NOT NULL AND c.expires_at <= p_now
        ORDER BY c.expires_at
        LIMIT greatest(p_oldest, 0)
        FOR UPDATE SKIP LOCKED),
    gone AS (
        UPDATE claim AS c SET status = 'expired'
        WHERE c.id IN (SELECT id FROM mine UNION SELECT id FROM oldest)
        RETURNING c.id, c.user_id, c.expires_at),
    logged AS (
        -- The ledger row says when the hold ended, not when it was noticed.
        INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
        SELECT g.id, p_coupon_id, g.user_id, 'expired', g.expires_at FROM gone AS g
        RETURNING 1)
    SELECT count(*) INTO v_expired FROM logged;
    IF v_expired > 0 THEN
        UPDATE coupon SET quantity = quantity + v_expired WHERE id = p_coupon_id;
    END IF;
    RETURN v_expired;
END;
$$;

-- claim_coupons_v1 with holds, for a batch on any coupons: the same rows and outcomes (see
-- claim_coupons_v1's comment), and a granted claim of a coupon with hold_seconds carries
-- expires_at = claimed_at + the hold. Due holds are expired under the coupon row locks
-- before the batch is decided.
--
-- Element i claims p_coupon_ids[i] for p_user_ids[i], with p_codes[i] as its code if granted
-- and p_idempotency_keys[i] / p_request_hashes[i] (both NULL: no key). One row per element,
-- in input order: ord (1-based), outcome, status (HTTP), body, as claim_coupons_v1 documents
-- them (0002). Within a coupon the elements are served in input order (arrival order).
--
-- THE LOCKS, and why they neither oversell nor deadlock. Every coupon that may grant a claim
-- (from a plain read) or has an idempotency key to store is locked, all in one statement, in
-- ascending coupon id; everything below is decided under those locks, so what is left is
-- what the previous holder committed: no oversell. Every other path that creates, releases
-- or expires a claim locks its one coupon row first, and a batch never returns to a lower id,
-- so two batches that share coupons meet first at the lowest shared one and the one that
-- waits holds nothing the other still needs: no cycle. Idempotency keys are reserved only
-- once every coupon lock is held, sorted, and claim rows (the due holds expired below, then
-- the new claims) come last. A coupon refused from the plain read (unknown, sold out, paused,
-- outside its window) with no key to store takes no lock at all.
CREATE FUNCTION claim_batch_v1(
    p_coupon_ids uuid[],
    p_user_ids text[],
    p_codes text[],
    p_idempotency_keys text[],
    p_request_hashes text[],
    p_now timestamptz DEFAULT now()
)
    RETURNS TABLE (ord integer, outcome text, status integer, body jsonb)
    LANGUAGE plpgsql
    -- Plan each statement once per connection (see claim_coupons_v1 in 0004).
    SET plan_cache_mode = force_generic_plan AS
$$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(p_coupon_ids), 0);
    v_to_lock    uuid[];            -- the coupons to lock, ascending
    v_refused    jsonb;             -- coupon id -> the refusal of its plain read (not locked)
    v_coupons    coupon[];          -- the locked coupons' rows, as of the lock
    v_due        uuid[];            -- locked coupons that may grant and have holds due
    v_due_id     uuid;
    v_mine       text[]  := '{}';   -- keys this call reserved
    v_stored     jsonb   := '{}';   -- key -> {hash, status, body}: answered before
    v_claimed_at text    := iso_utc_v1(p_now);
    -- Element i's answer, and the id of its claim if it was granted one (else NULL).
    v_outcomes   text[];
    v_statuses   integer[];
    v_bodies     jsonb[];
    v_ids        uuid[];
    v_granted    integer;
BEGIN
    IF coalesce(cardinality(p_user_ids), 0) <> n
        OR coalesce(cardinality(p_codes), 0) <> n
        OR coalesce(cardinality(p_idempotency_keys), 0) <> n
        OR coalesce(cardinality(p_request_hashes), 0) <> n THEN
        RAISE EXCEPTION 'claim_batch_v1: the five arrays must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- A plain read of every coupon first, no lock, as in claim_coupons_v1. Nothing left but a
    -- hold that is due is not sold out: that unit is back (the locked path below takes it).
    WITH wanted AS (
        SELECT e.coupon_id, bool_or(e.key IS NOT NULL) AS keyed
        FROM unnest(p_coupon_ids, p_idempotency_keys) AS e(coupon_id, key)
        GROUP BY e.coupon_id),
    read AS (
        SELECT w.coupon_id, w.keyed,
               claim_refusal_v1(w.coupon_id, c, CASE
                   WHEN c.quantity < 1 AND EXISTS (
                       SELECT 1 FROM claim AS h
                       WHERE h.coupon_id = w.coupon_id AND h.status = 'claimed'
                         AND h.expires_at IS NOT NULL AND h.expires_at <= p_now) THEN 1
                   ELSE c.quantity END, p_now) AS refusal
        FROM wanted AS w
        LEFT JOIN coupon AS c ON c.id = w.coupon_id)
    SELECT coalesce(array_agg(r.coupon_id ORDER BY r.coupon_id)
                        FILTER (WHERE r.keyed OR r.refusal IS NULL), '{}'),
           coalesce(jsonb_object_agg(r.coupon_id, r.refusal)
                        FILTER (WHERE NOT r.keyed AND r.refusal IS NOT NULL), '{}')
    INTO v_to_lock, v_refused
    FROM read AS r;

    -- THE LOCK (see THE LOCKS above): ascending id, every row locked in that order.
    SELECT coalesce(array_agg(c ORDER BY c.id), '{}') INTO v_coupons
    FROM (SELECT * FROM coupon WHERE id = ANY (v_to_lock) ORDER BY id FOR NO KEY UPDATE) AS c;

    IF coalesce(cardinality(array_remove(p_idempotency_keys, NULL)), 0) > 0 THEN
        -- After every coupon lock, sorted: two batches wait on each other's keys in one order.
        DELETE FROM idempotency_key
        WHERE key = ANY (p_idempotency_keys) AND created_at < p_now - interval '24 hours';
        WITH reserved AS (
            INSERT INTO idempotency_key (key, request_hash, created_at)
            SELECT k, h, p_now
            FROM (SELECT DISTINCT ON (k) k, h
                  FROM unnest(p_idempotency_keys, p_request_hashes)
                           WITH ORDINALITY AS e(k, h, i)
                  WHERE k IS NOT NULL
                  ORDER BY k, i) AS firsts
            ORDER BY k
            ON CONFLICT (key) DO NOTHING
            RETURNING key)
        SELECT coalesce(array_agg(key), '{}') INTO v_mine FROM reserved;
        SELECT coalesce(jsonb_object_agg(
                   key, jsonb_build_object('hash', request_hash, 'status', status, 'body', body)),
               '{}')
        INTO v_stored
        FROM idempotency_key
        WHERE key = ANY (p_idempotency_keys) AND NOT key = ANY (v_mine);
    END IF;

    -- Expiry at this instant, under the locks: for each locked coupon that can be claimed and
    -- has a hold due, expire the due holds of its users in this batch (so the limit below
    -- counts only what they really hold) and, oldest first, as many others as its claims may
    -- need beyond what is left. Each becomes 'expired' with its ledger row and its unit back,
    -- before anything is decided: a claim one millisecond after a hold expired takes that unit
    -- even if no sweeper ran. One index probe per locked coupon when nothing is due.
    SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}') INTO v_due
    FROM unnest(v_coupons) AS c
    WHERE claim_refusal_v1(c.id, c, 1, p_now) IS NULL AND EXISTS (
        SELECT 1 FROM claim AS h
        WHERE h.coupon_id = c.id AND h.status = 'claimed'
          AND h.expires_at IS NOT NULL AND h.expires_at <= p_now);
    IF cardinality(v_due) > 0 THEN
        FOREACH v_due_id IN ARRAY v_due LOOP
            PERFORM expire_holds_v1(
                v_due_id,
                ARRAY(SELECT e.user_id FROM unnest(p_coupon_ids, p_user_ids) AS e(coupon_id, user_id)
                      WHERE e.coupon_id = v_due_id),
                (SELECT count(*)::integer FROM unnest(p_coupon_ids) AS e(coupon_id)
                 WHERE e.coupon_id = v_due_id)
                    - (SELECT c.quantity FROM unnest(v_coupons) AS c WHERE c.id = v_due_id),
                p_now);
        END LOOP;
        -- What is left now, units back included (we hold the locks: these are our rows).
        SELECT array_agg(c ORDER BY c.id) INTO v_coupons
        FROM coupon AS c WHERE c.id = ANY (v_to_lock);
    END IF;

    -- Decide the whole batch in one statement, as claim_coupons_v1 decides one coupon's (its
    -- comments say why each rule holds), partitioned by coupon. A live claim is 'claimed' or
    -- 'redeemed': the due holds of these users were expired above, and one a redeemer holds
    -- right now still counts (it may be redeemed), so the limit is never exceeded.
    WITH element AS (
        SELECT e.ord::integer AS ord, e.coupon_id, e.user_id, e.code, e.key, e.hash,
               v_stored -> e.key AS stored,
               CASE WHEN e.key IS NULL THEN e.ord::integer
                    WHEN NOT v_stored ? e.key THEN array_position(p_idempotency_keys, e.key)
               END AS decided_by
        FROM unnest(p_coupon_ids, p_user_ids, p_codes, p_idempotency_keys, p_request_hashes)
                 WITH ORDINALITY AS e(coupon_id, user_id, code, key, hash, ord)
    ),
    rule AS (
        -- Each coupon of the batch: its locked row and refusal, or its plain read's refusal
        -- (a coupon gone between the read and the lock is not found).
        SELECT w.coupon_id, c.quantity, c.per_user_limit, c.hold_seconds,
               CASE WHEN c.id IS NOT NULL THEN claim_refusal_v1(c.id, c, c.quantity, p_now)
                    ELSE coalesce(v_refused -> w.coupon_id::text,
                                  claim_refusal_v1(w.coupon_id, NULL::coupon, 0, p_now))
               END AS refusal,
               claim_refusal_v1(w.coupon_id, c, 0, p_now) AS none_left
        FROM (SELECT DISTINCT e.coupon_id FROM element AS e) AS w
        LEFT JOIN unnest(v_coupons) AS c ON c.id = w.coupon_id
    ),
    fit AS (
        SELECT e.ord, e.coupon_id, e.user_id, e.code, e.hash, l.held, r.quantity,
               r.per_user_limit, r.refusal, r.none_left,
               l.held + row_number() OVER (PARTITION BY e.coupon_id, e.user_id ORDER BY e.ord)
                   <= r.per_user_limit AS fits
        FROM element AS e
        JOIN rule AS r ON r.coupon_id = e.coupon_id
        CROSS JOIN LATERAL (
            SELECT count(*)::integer AS held
            FROM claim AS c
            WHERE r.refusal IS NULL
              AND c.coupon_id = e.coupon_id
              AND c.user_id = e.user_id
              AND c.status IN ('claimed', 'redeemed')) AS l
        WHERE e.decided_by = e.ord
    ),
    decided AS (
        SELECT f.*,
               CASE WHEN f.refusal IS NOT NULL THEN f.refusal ->> 'outcome'
                    WHEN count(*) FILTER (WHERE f.fits) OVER (
                             PARTITION BY f.coupon_id ORDER BY f.ord
                             ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                         >= f.quantity THEN 'sold_out'
                    WHEN f.fits THEN 'granted'
                    ELSE 'limit_reached'
               END AS outcome
        FROM fit AS f
    ),
    answer AS (
        SELECT d.ord, d.hash, d.outcome, g.id,
               CASE d.outcome WHEN 'granted' THEN 201 WHEN 'not_found' THEN 404 ELSE 409 END
                   AS status,
               CASE d.outcome
                   WHEN 'granted' THEN jsonb_build_object(
                       'id', g.id, 'coupon_id', d.coupon_id, 'user_id', d.user_id,
                       'code', d.code, 'status', 'claimed', 'claimed_at', v_claimed_at,
                       'expires_at', iso_utc_v1(
                           p_now + make_interval(secs => r.hold_seconds)))
                   WHEN 'limit_reached' THEN jsonb_build_object(
                       'outcome', 'limit_reached',
                       'detail', format(
                           'user %s already holds %s claim(s) of coupon %s (the limit)',
                           d.user_id, greatest(d.held, d.per_user_limit), d.coupon_id))
                   ELSE coalesce(d.refusal, d.none_left)
               END AS body
        FROM decided AS d
        JOIN rule AS r ON r.coupon_id = d.coupon_id
        CROSS JOIN LATERAL (SELECT CASE WHEN d.outcome = 'granted' THEN gen_random_uuid() END
                                       AS id) AS g
    ),
    reply AS (
        SELECT e.ord, a.id,
               CASE WHEN a.ord = e.ord THEN a.outcome
                    WHEN p.same THEN 'replayed' ELSE 'key_conflict' END AS outcome,
               CASE WHEN a.ord = e.ord THEN a.status WHEN p.same THEN p.status ELSE 422 END
                   AS status,
               CASE WHEN a.ord = e.ord THEN a.body
                    WHEN p.same THEN p.body
                    ELSE jsonb_build_object('outcome', 'key_conflict', 'detail',
                                            'this Idempotency-Key was used for another request')
               END AS body
        FROM element AS e
        LEFT JOIN answer AS a ON a.ord = e.decided_by
        CROSS JOIN LATERAL (
            SELECT coalesce(a.hash, e.stored ->> 'hash') IS NOT DISTINCT FROM e.hash AS same,
                   coalesce(a.status, (e.stored ->> 'status')::integer) AS status,
                   coalesce(a.body, e.stored -> 'body') AS body) AS p
    )
    SELECT array_agg(r.outcome ORDER BY r.ord), array_agg(r.status ORDER BY r.ord),
           array_agg(r.body ORDER BY r.ord),
           array_agg(CASE WHEN r.outcome = 'granted' THEN r.id END ORDER BY r.ord),
           count(*) FILTER (WHERE r.outcome = 'granted')
    INTO v_outcomes, v_statuses, v_bodies, v_ids, v_granted
    FROM reply AS r;

    IF v_granted > 0 THEN
        INSERT INTO claim (id, coupon_id, user_id, code, status, claimed_at, expires_at)
        SELECT g.id, g.coupon_id, g.user_id, g.code, 'claimed', p_now,
               p_now + make_interval(secs => c.hold_seconds)
        FROM unnest(v_ids, p_coupon_ids, p_user_ids, p_codes)
                 WITH ORDINALITY AS g(id, coupon_id, user_id, code, i)
        JOIN unnest(v_coupons) AS c ON c.id = g.coupon_id
        WHERE g.id IS NOT NULL
        ORDER BY g.i;
        INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
        SELECT g.id, g.coupon_id, g.user_id, 'granted', p_now
        FROM unnest(v_ids, p_coupon_ids, p_user_ids) WITH ORDINALITY AS g(id, coupon_id, user_id, i)
        WHERE g.id IS NOT NULL
        ORDER BY g.i;
        UPDATE coupon AS c SET quantity = c.quantity - g.granted
        FROM (SELECT e.coupon_id, count(*)::integer AS granted
              FROM unnest(v_ids, p_coupon_ids) AS e(id, coupon_id)
              WHERE e.id IS NOT NULL
              GROUP BY e.coupon_id) AS g
        WHERE c.id = g.coupon_id;
    END IF;
    IF cardinality(v_mine) > 0 THEN
        UPDATE idempotency_key AS k
        SET status = a.status, body = a.body
        FROM unnest(p_idempotency_keys, v_outcomes, v_statuses, v_bodies)
                 AS a(key, outcome, status, body)
        WHERE k.key = a.key
          AND k.key = ANY (v_mine)
          AND a.outcome NOT IN ('replayed', 'key_conflict');
    END IF;

    RETURN QUERY
        SELECT a.i::integer, a.outcome, a.status, a.body
        FROM unnest(v_outcomes, v_statuses, v_bodies)
                 WITH ORDINALITY AS a(outcome, status, body, i)
        ORDER BY a.i;
END;
$$;

-- One coupon: the batch above with every element on p_coupon_id (same rows, same rules).
CREATE FUNCTION claim_coupons_v2(
    p_coupon_id uuid,
    p_user_ids text[],
    p_codes text[],
    p_idempotency_keys text[],
    p_request_hashes text[],
    p_now timestamptz DEFAULT now()
)
    RETURNS TABLE (ord integer, outcome text, status integer, body jsonb)
    LANGUAGE sql AS
$$
SELECT * FROM claim_batch_v1(
    array_fill(p_coupon_id, ARRAY[coalesce(cardinality(p_user_ids), 0)]),
    p_user_ids, p_codes, p_idempotency_keys, p_request_hashes, p_now)
$$;

-- release_claim_v1 with holds: a claim whose hold expired answers 'expired' (and its expiry
-- is recorded, if the sweeper had not yet); outcomes released, not_found, already_released,
-- already_redeemed, expired.
CREATE FUNCTION release_claim_v2(p_claim_id uuid, p_now timestamptz DEFAULT now())
    RETURNS TABLE (outcome text, claim_status text, coupon_id uuid)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    v_coupon_id uuid;
    v_claim     claim%ROWTYPE;
BEGIN
    SELECT c.coupon_id INTO v_coupon_id FROM claim AS c WHERE c.id = p_claim_id;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    -- Lock order coupon row -> claim row, as in every path: no deadlock. Holding the coupon
    -- row, the unit we give back (by release or by expiry) cannot race a grant: no oversell.
    PERFORM 1 FROM coupon WHERE id = v_coupon_id FOR NO KEY UPDATE;
    -- The claim row lock: a second release, a redeemer or an expiry waits, then reads what
    -- we decided (or we read theirs): the claim ends one way.
    SELECT * INTO v_claim FROM claim AS c WHERE c.id = p_claim_id FOR UPDATE;
    coupon_id := v_coupon_id;
    IF v_claim.status = 'claimed' AND v_claim.expires_at <= p_now THEN
        -- Too late to release: the hold expired. Record the expiry now, as the sweeper would
        -- (we hold both locks it takes), so the refusal and the ledger agree at once.
        UPDATE claim SET status = 'expired' WHERE id = p_claim_id;
        UPDATE coupon SET quantity = quantity + 1 WHERE id = v_coupon_id;
        INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
        VALUES (p_claim_id, v_coupon_id, v_claim.user_id, 'expired', v_claim.expires_at);
        v_claim.status := 'expired';
    END IF;
    claim_status := v_claim.status;
    IF v_claim.status = 'expired' THEN
        outcome := 'expired';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_claim.status <> 'claimed' THEN
        outcome := 'already_' || v_claim.status;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE claim SET status = 'released', released_at = p_now WHERE id = p_claim_id;
    UPDATE coupon SET quantity = quantity + 1 WHERE id = v_coupon_id;
    INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
    VALUES (p_claim_id, v_coupon_id, v_claim.user_id, 'released', p_now);
    outcome := 'released';
    claim_status := 'released';
    RETURN NEXT;
END;
$$;

-- redeem_claim_v1 with holds: a claim whose hold expired answers 'expired', nothing written.
-- Outcomes redeemed, not_found, already_redeemed, already_released, expired.
CREATE FUNCTION redeem_claim_v2(p_code text, p_now timestamptz DEFAULT now())
    RETURNS TABLE (outcome text, claim_id uuid)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    v_claim claim%ROWTYPE;
BEGIN
    -- The claim row lock only, as in redeem_claim_v1: redeeming changes neither what is left
    -- nor the live claims. A redemption racing its own expiry queues here with whoever
    -- expires it (a claim path, a release, the sweeper: they take this lock after the coupon
    -- row, and skip it while we hold it): whoever comes second reads the first's committed
    -- status, so the claim ends redeemed or expired, never both. A hold that is due but not
    -- yet marked is refused without a write: marking it needs the coupon row, which would
    -- come after the claim row here, against the lock order.
    SELECT * INTO v_claim FROM claim AS c WHERE c.code = p_code FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    claim_id := v_claim.id;
    IF v_claim.status = 'expired'
        OR (v_claim.status = 'claimed' AND v_claim.expires_at <= p_now) THEN
        outcome := 'expired';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_claim.status <> 'claimed' THEN
        outcome := 'already_' || v_claim.status;
        RETURN NEXT;
        RETURN;
    END IF;
    UPDATE claim SET status = 'redeemed', redeemed_at = p_now WHERE id = v_claim.id;
    INSERT INTO claim_event (claim_id, coupon_id, user_id, kind, occurred_at)
    VALUES (v_claim.id, v_claim.coupon_id, v_claim.user_id, 'redeemed', p_now);
    outcome := 'redeemed';
    RETURN NEXT;
END;
$$;

-- A PATCH of a coupon (NULL / false: keep). Outcomes: changed, not_found, hold_shortens (a
-- shorter hold_seconds while a live claim would outlast it: nothing changes). A total below
-- what is held raises coupon_quantity_not_negative, and a bad window coupon_window_ordered.
CREATE FUNCTION change_coupon_v1(
    p_coupon_id uuid,
    p_total integer,
    p_set_starts boolean,
    p_starts timestamptz,
    p_set_ends boolean,
    p_ends timestamptz,
    p_paused boolean,
    p_limit integer,
    p_set_hold boolean,
    p_hold integer,
    p_now timestamptz DEFAULT now()
)
    RETURNS text
    LANGUAGE plpgsql AS
$$
DECLARE
    v_coupon  coupon%ROWTYPE;
    v_missing integer;
BEGIN
    -- The coupon row lock, first as in every path: the change waits for claimers in flight
    -- and moves what is left by exactly the change of the total. One coupon row, then (only
    -- to make room) claim rows: the order every path uses, no deadlock.
    SELECT * INTO v_coupon FROM coupon WHERE id = p_coupon_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    -- A hold already granted is never moved (its user was told its expires_at). A shorter
    -- hold_seconds is refused while a live claim would outlast it, so no live claim ever
    -- outlasts its coupon's hold.
    IF p_set_hold AND p_hold IS NOT NULL AND EXISTS (
        SELECT 1 FROM claim AS c
        WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
          AND (c.expires_at IS NULL OR c.expires_at > p_now + make_interval(secs => p_hold))) THEN
        RETURN 'hold_shortens';
    END IF;
    -- A total below what is held now: first give back the due holds that make the
    -- difference (they are not held any more), so the change is judged as of this instant.
    v_missing := -(v_coupon.quantity + coalesce(p_total - v_coupon.total_quantity, 0));
    IF v_missing > 0 THEN
        PERFORM expire_holds_v1(p_coupon_id, '{}', v_missing, p_now);
    END IF;
    -- Still below what is held: quantity goes negative and coupon_quantity_not_negative
    -- refuses it, and the whole call (expiries included) is rolled back.
    UPDATE coupon
    SET total_quantity = coalesce(p_total, total_quantity),
        quantity       = quantity + coalesce(p_total - total_quantity, 0),
        starts_at      = CASE WHEN p_set_starts THEN p_starts ELSE starts_at END,
        ends_at        = CASE WHEN p_set_ends THEN p_ends ELSE ends_at END,
        paused         = coalesce(p_paused, paused),
        per_user_limit = coalesce(p_limit, per_user_limit),
        hold_seconds   = CASE WHEN p_set_hold THEN p_hold ELSE hold_seconds END
    WHERE id = p_coupon_id;
    RETURN 'changed';
END;
$$;

-- The sweeper's step on one coupon: expire up to p_batch of its due holds, oldest first; how
-- many (0 when nothing is due, or another sweeper is on this coupon right now).
CREATE FUNCTION sweep_holds_v1(p_coupon_id uuid, p_batch integer)
    RETURNS integer
    LANGUAGE plpgsql AS
$$
BEGIN
    -- One sweeper per coupon at a time, across every process and host: a transaction-level
    -- advisory lock, tried, never waited for (only sweepers take it, in the namespace
    -- 1936221554, two-key form), so the others move on to other coupons instead of queueing
    -- at this coupon's row lock behind the claims. It comes before the coupon row and is
    -- never waited for: no deadlock.
    IF NOT pg_try_advisory_xact_lock(1936221554, hashtext(p_coupon_id::text)) THEN
        RETURN 0;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM claim AS c
        WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
          AND c.expires_at IS NOT NULL AND c.expires_at <= now()) THEN
        RETURN 0;
    END IF;
    -- The coupon row lock, as every path takes it first: the sweeper queues with the claims
    -- (a batch at a time, so they wait for at most one batch), and expire_holds_v1 gives the
    -- units back under it: a hold is expired once (its status is re-checked under its own
    -- row lock) and no unit is counted twice.
    PERFORM 1 FROM coupon WHERE id = p_coupon_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    RETURN expire_holds_v1(p_coupon_id, '{}', p_batch, now());
END;
$$;

-- ---- group commit across coupons ---------------------------------------------------------

-- One transaction for a batch of claims on many coupons (v1 gives and v2 claims).
--
-- A server process gathers the claims waiting for any coupon into one batch (arrival order)
-- and hands it to one of these functions: one statement, so one transaction, one round trip
-- and one WAL flush for the whole batch. A v2 batch is decided by claim_batch_v1, every
-- coupon at once (see THE LOCKS there). A v1 batch is grouped by coupon here, the groups
-- visited in one global order (coupon id ascending), and each given with the single-coupon
-- give_coupons_to_users, so every rule, lock and outcome is that function's own. A group
-- that fails (a constraint, a lock timeout, a deadlock victim) is rolled back alone, in its
-- own subtransaction (BEGIN ... EXCEPTION), and answered 'failed'; the other groups commit.
-- One row per input element, in input order.
--
-- THE LOCK ORDER, and why it neither oversells nor deadlocks. Each coupon row is locked
-- before anything is decided for it (no oversell: what is left is what the previous holder
-- committed). A batch takes those coupon row locks in ascending coupon id and never returns
-- to a lower id, whichever process, host or API (v1 or v2) sent it; every other path holds
-- at most one coupon row. So two batches that share coupons meet first at the lowest shared
-- one, and the one that waits there holds nothing the other still needs: no cycle, no
-- deadlock. A coupon refused from the plain read (unknown, sold out, paused, outside its
-- window; no key to store) takes no lock at all.
--
-- A statement_timeout (query_canceled) is not caught: it cancels the whole batch, which the
-- caller answers as a failed batch, with nothing of it written.

-- v1: give coupons to users, element i giving p_coupon_ids[i] to p_user_ids[i].
-- Rows: ord (1-based), outcome ('granted', 'sold_out', 'not_found' as give_coupons_to_users
-- answers them, or 'failed'), quantity_left, and for 'failed' only, failure =
-- {"sqlstate", "detail", "constraint"}: the error that rolled its group back.
CREATE FUNCTION give_coupons_many_v1(p_coupon_ids uuid[], p_user_ids text[])
    RETURNS TABLE (ord integer, outcome text, quantity_left integer, failure jsonb)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(p_coupon_ids), 0);
    v_coupon     uuid;
    v_ords       integer[];    -- the group's elements, in arrival order
    v_users      text[];
    v_g_outcomes text[];       -- the group's answers, in the same order
    v_g_left     integer[];
    v_g_failure  jsonb;
    v_outcomes   text[]    := array_fill(NULL::text, ARRAY[n]);
    v_left       integer[] := array_fill(NULL::integer, ARRAY[n]);
    v_failures   jsonb[]   := array_fill(NULL::jsonb, ARRAY[n]);
    v_state      text;
    v_message    text;
    v_constraint text;
BEGIN
    IF coalesce(cardinality(p_user_ids), 0) <> n THEN
        RAISE EXCEPTION 'give_coupons_many_v1: the two arrays must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Ascending coupon id: the one lock order (see THE LOCK ORDER above).
    FOR v_coupon, v_ords, v_users IN
        SELECT e.coupon_id, array_agg(e.i::integer ORDER BY e.i),
               array_agg(e.user_id ORDER BY e.i)
        FROM unnest(p_coupon_ids, p_user_ids) WITH ORDINALITY AS e(coupon_id, user_id, i)
        GROUP BY e.coupon_id
        ORDER BY e.coupon_id
    LOOP
        v_g_failure := NULL;
        BEGIN
            SELECT array_agg(r.outcome ORDER BY r.j), array_agg(r.quantity_left ORDER BY r.j)
            INTO v_g_outcomes, v_g_left
            FROM give_coupons_to_users(v_coupon, v_users)
                     WITH ORDINALITY AS r(outcome, quantity_left, j);
        EXCEPTION WHEN OTHERS THEN
            -- Only this group is rolled back (its subtransaction, with its lock); the
            -- groups before and after it are kept.
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_constraint = CONSTRAINT_NAME;
            v_g_outcomes := array_fill('failed'::text, ARRAY[cardinality(v_ords)]);
            v_g_left := array_fill(NULL::integer, ARRAY[cardinality(v_ords)]);
            v_g_failure := jsonb_build_object('sqlstate', v_state, 'detail', v_message,
                                              'constraint', nullif(v_constraint, ''));
        END;
        FOR j IN 1 .. cardinality(v_ords) LOOP
            v_outcomes[v_ords[j]] := v_g_outcomes[j];
            v_left[v_ords[j]] := v_g_left[j];
            v_failures[v_ords[j]] := v_g_failure;
        END LOOP;
    END LOOP;
    RETURN QUERY
        SELECT a.i::integer, a.outcome, a.quantity_left, a.failure
        FROM unnest(v_outcomes, v_left, v_failures) WITH ORDINALITY AS a(outcome, quantity_left,
                                                                         failure, i)
        ORDER BY a.i;
END;
$$;

-- The fallback of claim_coupons_many_v1 below: the batch decided coupon by coupon (ascending
-- id, the one lock order), each coupon's group in its own subtransaction, so a group that
-- fails is rolled back alone and answered 'failed' (status 503, body {"outcome": "failed",
-- "detail", "sqlstate", "constraint"}: the error, nothing of the group written); the other
-- groups are kept. Same arguments and rows as claim_batch_v1.
CREATE FUNCTION claim_each_coupon_apart_v1(
    p_coupon_ids uuid[],
    p_user_ids text[],
    p_codes text[],
    p_idempotency_keys text[],
    p_request_hashes text[]
)
    RETURNS TABLE (ord integer, outcome text, status integer, body jsonb)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(p_coupon_ids), 0);
    v_coupon     uuid;
    v_ords       integer[];    -- the group's elements, in arrival order
    v_users      text[];
    v_codes      text[];
    v_keys       text[];
    v_hashes     text[];
    v_g_outcomes text[];       -- the group's answers, in the same order
    v_g_statuses integer[];
    v_g_bodies   jsonb[];
    v_outcomes   text[]    := array_fill(NULL::text, ARRAY[n]);
    v_statuses   integer[] := array_fill(NULL::integer, ARRAY[n]);
    v_bodies     jsonb[]   := array_fill(NULL::jsonb, ARRAY[n]);
    v_state      text;
    v_message    text;
    v_constraint text;
BEGIN
    FOR v_coupon, v_ords, v_users, v_codes, v_keys, v_hashes IN
        SELECT e.coupon_id, array_agg(e.i::integer ORDER BY e.i),
               array_agg(e.user_id ORDER BY e.i), array_agg(e.code ORDER BY e.i),
               array_agg(e.key ORDER BY e.i), array_agg(e.hash ORDER BY e.i)
        FROM unnest(p_coupon_ids, p_user_ids, p_codes, p_idempotency_keys, p_request_hashes)
                 WITH ORDINALITY AS e(coupon_id, user_id, code, key, hash, i)
        GROUP BY e.coupon_id
        ORDER BY e.coupon_id
    LOOP
        BEGIN
            SELECT array_agg(r.outcome ORDER BY r.ord), array_agg(r.status ORDER BY r.ord),
                   array_agg(r.body ORDER BY r.ord)
            INTO v_g_outcomes, v_g_statuses, v_g_bodies
            FROM claim_coupons_v2(v_coupon, v_users, v_codes, v_keys, v_hashes) AS r;
        EXCEPTION WHEN OTHERS THEN
            -- Only this group is rolled back (its subtransaction: its claims, keys and
            -- lock); the groups before and after it are kept.
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT,
                                    v_constraint = CONSTRAINT_NAME;
            v_g_outcomes := array_fill('failed'::text, ARRAY[cardinality(v_ords)]);
            v_g_statuses := array_fill(503, ARRAY[cardinality(v_ords)]);
            v_g_bodies := array_fill(
                jsonb_build_object('outcome', 'failed', 'detail', v_message,
                                   'sqlstate', v_state, 'constraint', nullif(v_constraint, '')),
                ARRAY[cardinality(v_ords)]);
        END;
        FOR j IN 1 .. cardinality(v_ords) LOOP
            v_outcomes[v_ords[j]] := v_g_outcomes[j];
            v_statuses[v_ords[j]] := v_g_statuses[j];
            v_bodies[v_ords[j]] := v_g_bodies[j];
        END LOOP;
    END LOOP;
    RETURN QUERY
        SELECT a.i::integer, a.outcome, a.status, a.body
        FROM unnest(v_outcomes, v_statuses, v_bodies) WITH ORDINALITY AS a(outcome, status,
                                                                           body, i)
        ORDER BY a.i;
END;
$$;

-- v2, any coupons: the whole batch at once (claim_batch_v1), in one subtransaction. If
-- anything in it fails (a constraint, a code collision, a lock timeout, a deadlock victim),
-- nothing of it is written and it is decided again coupon by coupon
-- (claim_each_coupon_apart_v1): only the failing coupon's claims are answered 'failed', the
-- others commit. A statement_timeout (query_canceled) is not caught: it cancels the whole
-- batch, which the caller answers as a failed batch, with nothing of it written.
CREATE FUNCTION claim_coupons_many_v1(
    p_coupon_ids uuid[],
    p_user_ids text[],
    p_codes text[],
    p_idempotency_keys text[],
    p_request_hashes text[]
)
    RETURNS TABLE (ord integer, outcome text, status integer, body jsonb)
    LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    v_outcomes text[];
    v_statuses integer[];
    v_bodies   jsonb[];
BEGIN
    BEGIN
        SELECT array_agg(r.outcome ORDER BY r.ord), array_agg(r.status ORDER BY r.ord),
               array_agg(r.body ORDER BY r.ord)
        INTO v_outcomes, v_statuses, v_bodies
        FROM claim_batch_v1(p_coupon_ids, p_user_ids, p_codes, p_idempotency_keys,
                            p_request_hashes) AS r;
    EXCEPTION
        WHEN invalid_parameter_value THEN
            RAISE;  -- arrays of different lengths: the caller's mistake, nothing to retry
        WHEN OTHERS THEN
            RETURN QUERY SELECT * FROM claim_each_coupon_apart_v1(
                p_coupon_ids, p_user_ids, p_codes, p_idempotency_keys, p_request_hashes);
            RETURN;
    END;
    RETURN QUERY
        SELECT a.i::integer, a.outcome, a.status, a.body
        FROM unnest(v_outcomes, v_statuses, v_bodies) WITH ORDINALITY AS a(outcome, status,
                                                                           body, i)
        ORDER BY a.i;
END;
$$;

-- ---- the event feed ----------------------------------------------------------------------

-- A coupon as the API shows it (CouponPublic), as of now: what is left counts the holds that
-- are due, as every read does.
CREATE FUNCTION coupon_public_v1(p_coupon coupon)
    RETURNS json
    LANGUAGE sql STABLE AS
$$
SELECT json_build_object(
    'id', p_coupon.id, 'name', p_coupon.name, 'type', p_coupon.type,
    'quantity', p_coupon.total_quantity,
    'remaining', p_coupon.quantity + due_holds_v1(p_coupon.id, now()),
    'claimed', p_coupon.total_quantity - p_coupon.quantity - due_holds_v1(p_coupon.id, now()),
    'redeemed', (SELECT count(*) FROM claim AS r
                 WHERE r.coupon_id = p_coupon.id AND r.status = 'redeemed'),
    'per_user_limit', p_coupon.per_user_limit,
    'starts_at', iso_utc_v1(p_coupon.starts_at), 'ends_at', iso_utc_v1(p_coupon.ends_at),
    'paused', p_coupon.paused, 'created_at', iso_utc_v1(p_coupon.created_at),
    'hold_seconds', p_coupon.hold_seconds)
$$;

-- Every event as the feed shows it: type, when, and `data` (the claim just after the change,
-- the coupon as it was then, or v1's grant). A claim's fields never change but its status and
-- the time it ended, so its data is derived from the ledger row here rather than stored.
CREATE VIEW event_feed AS
SELECT e.id, e.xid, e.coupon_id, 'claim.' || e.kind AS type, e.occurred_at,
       json_build_object(
           'id', c.id, 'coupon_id', c.coupon_id, 'user_id', c.user_id, 'code', c.code,
           'status', CASE e.kind WHEN 'granted' THEN 'claimed' ELSE e.kind END,
           'claimed_at', iso_utc_v1(c.claimed_at),
           'released_at', CASE e.kind WHEN 'released' THEN iso_utc_v1(e.occurred_at) END,
           'redeemed_at', CASE e.kind WHEN 'redeemed' THEN iso_utc_v1(e.occurred_at) END,
           'expires_at', iso_utc_v1(c.expires_at)) AS data
FROM claim_event AS e
JOIN claim AS c ON c.id = e.claim_id
UNION ALL
SELECT v.id, v.xid, v.coupon_id, 'coupon.' || v.kind, v.occurred_at, v.data
FROM coupon_event AS v
UNION ALL
-- A v1 give (the original API's grant: no claim, no code), as v1's ledger row says it.
SELECT g.id, g.xid, g.couponid::uuid, 'coupon.given', g.given_at,
       json_build_object('id', g.id, 'coupon_id', g.couponid::uuid, 'user_id', g.userid,
                          'quantity_left', g.newquantity, 'given_at', iso_utc_v1(g.given_at))
FROM coupon_given_events AS g;

-- ---- triggers ----------------------------------------------------------------------------

-- An insert that names only quantity (v1's shape, scripts, old clients) means "all of it is
-- left": total_quantity defaults to quantity. A column DEFAULT cannot refer to another
-- column, so this takes a trigger; it runs before the NOT NULL and CHECK constraints.
CREATE FUNCTION coupon_total_defaults_to_quantity() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    NEW.total_quantity := coalesce(NEW.total_quantity, NEW.quantity);
    RETURN NEW;
END;
$$;
CREATE TRIGGER coupon_total_defaults_to_quantity
    BEFORE INSERT ON coupon
    FOR EACH ROW EXECUTE FUNCTION coupon_total_defaults_to_quantity();

-- The row triggers below write a coupon's events in the transaction that changes it, so
-- every path (v1 and v2, a PATCH, a grant, the sweeper) is covered by one definition.
CREATE FUNCTION log_coupon_event() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    INSERT INTO coupon_event (coupon_id, kind, data)
    VALUES (NEW.id, TG_ARGV[0], coupon_public_v1(NEW));
    RETURN NULL;
END;
$$;
CREATE TRIGGER coupon_created_event
    AFTER INSERT ON coupon
    FOR EACH ROW EXECUTE FUNCTION log_coupon_event('created');
-- A grant changes only quantity: its UPDATE is compared here and writes nothing.
CREATE TRIGGER coupon_changed_event
    AFTER UPDATE ON coupon
    FOR EACH ROW
    WHEN ((OLD.name, OLD.type, OLD.total_quantity, OLD.per_user_limit, OLD.starts_at,
           OLD.ends_at, OLD.paused, OLD.hold_seconds)
          IS DISTINCT FROM
          (NEW.name, NEW.type, NEW.total_quantity, NEW.per_user_limit, NEW.starts_at,
           NEW.ends_at, NEW.paused, NEW.hold_seconds))
    EXECUTE FUNCTION log_coupon_event('updated');
-- Once each time what is left reaches 0: the UPDATE that takes it from above 0 to 0, unless a
-- hold is due (then the coupon is not sold out: that unit is back for the next claim). The
-- conditions are checked in order; the count of due holds runs only on that last UPDATE.
-- Written at commit (a deferred constraint trigger), so it comes after every other event of
-- its transaction: the grant that took the last unit (v1 gives update the quantity before
-- they write their ledger row) and the PATCH that cut the total.
CREATE CONSTRAINT TRIGGER coupon_sold_out_event
    AFTER UPDATE OF quantity ON coupon
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.quantity > 0 AND NEW.quantity = 0 AND due_holds_v1(NEW.id, now()) = 0)
    EXECUTE FUNCTION log_coupon_event('sold_out');
