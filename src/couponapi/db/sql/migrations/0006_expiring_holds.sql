-- Holds that expire (docs/api-v2.md#holds, docs/design.md#holds-that-expire).
--
-- A coupon with hold_seconds gives claims that expire: a claim not redeemed by its
-- expires_at is 'expired', its unit back in what is left and no longer counted against the
-- per-user limit. Exact at every instant: every claim path expires, under the coupon row
-- lock, the due holds it needs before it decides, so a claim one millisecond after a hold
-- expired can take that unit before any sweeper ran. The sweeper (sweep_holds_v1, run by
-- every server process) writes the 'expired' ledger row of every other expiry within
-- seconds.
--
-- The functions of 0002/0004 stay callable, unchanged, for servers of the previous version
-- during a rolling upgrade: they never oversell, but they do not know holds (they grant
-- claims that never expire, count an expired claim against the limit, and redeem a due hold
-- the sweeper has not reached yet).

ALTER TABLE coupon
    ADD COLUMN hold_seconds integer
        CONSTRAINT coupon_hold_seconds_range CHECK (hold_seconds BETWEEN 1 AND 2592000);

ALTER TABLE claim ADD COLUMN expires_at timestamptz;
ALTER TABLE claim DROP CONSTRAINT claim_status_known;
ALTER TABLE claim ADD CONSTRAINT claim_status_known
    CHECK (status IN ('claimed', 'released', 'redeemed', 'expired'));
ALTER TABLE claim_event DROP CONSTRAINT claim_event_kind_known;
ALTER TABLE claim_event ADD CONSTRAINT claim_event_kind_known
    CHECK (kind IN ('granted', 'released', 'redeemed', 'expired'));

-- The live holds, by coupon and expiry: a claim path finds a coupon's due holds (oldest
-- first) with one range scan, the sweeper finds the coupons that have any, and a coupon's
-- `remaining` counts its due holds. Only claims that can expire are in it: a coupon without
-- hold_seconds pays nothing for it.
CREATE INDEX claim_hold_idx ON claim (coupon_id, expires_at)
    WHERE status = 'claimed' AND expires_at IS NOT NULL;
-- A coupon's expired count (the dashboard, the audit) reads only the expired claims.
CREATE INDEX claim_expired_idx ON claim (coupon_id) WHERE status = 'expired';

CREATE FUNCTION due_holds_v1(p_coupon_id uuid, p_now timestamptz)
    RETURNS integer
    LANGUAGE sql STABLE PARALLEL SAFE AS
$$
SELECT count(*)::integer
FROM claim AS c
WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
  AND c.expires_at IS NOT NULL AND c.expires_at <= p_now
$$;

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

CREATE FUNCTION claim_coupons_v2(
    p_coupon_id uuid,
    p_user_ids text[],
    p_codes text[],
    p_idempotency_keys text[],
    p_request_hashes text[],
    p_now timestamptz DEFAULT now()
)
    RETURNS TABLE (ord integer, outcome text, status integer, body jsonb)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan AS
$$
#variable_conflict use_column
DECLARE
    n            integer := coalesce(cardinality(p_user_ids), 0);
    v_keyed      boolean := coalesce(cardinality(array_remove(p_idempotency_keys, NULL)), 0) > 0;
    v_coupon     coupon%ROWTYPE;
    v_left       integer;
    v_refusal    jsonb;
    v_none_left  jsonb;
    v_mine       text[]  := '{}';
    v_stored     jsonb   := '{}';
    v_claimed_at text;
    v_expires    timestamptz;
    v_outcomes   text[];
    v_statuses   integer[];
    v_bodies     jsonb[];
    v_ids        uuid[];
    v_granted    integer;
BEGIN
    IF coalesce(cardinality(p_codes), 0) <> n
        OR coalesce(cardinality(p_idempotency_keys), 0) <> n
        OR coalesce(cardinality(p_request_hashes), 0) <> n THEN
        RAISE EXCEPTION 'claim_coupons_v2: the four arrays must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF NOT v_keyed THEN
        -- A plain read first, no lock, as in claim_coupons_v1. Nothing left but a hold that
        -- is due is not sold out: that unit is back (the locked path below takes it).
        SELECT * INTO v_coupon FROM coupon WHERE id = p_coupon_id;
        v_left := v_coupon.quantity;
        IF v_left < 1 AND EXISTS (
            SELECT 1 FROM claim AS c
            WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
              AND c.expires_at IS NOT NULL AND c.expires_at <= p_now) THEN
            v_left := 1;
        END IF;
        v_refusal := claim_refusal_v1(p_coupon_id, v_coupon, v_left, p_now);
        IF v_refusal IS NOT NULL THEN
            RETURN QUERY
                SELECT e.ord::integer, v_refusal ->> 'outcome',
                       CASE WHEN v_coupon.id IS NULL THEN 404 ELSE 409 END, v_refusal
                FROM unnest(p_user_ids) WITH ORDINALITY AS e(user_id, ord)
                ORDER BY e.ord;
            RETURN;
        END IF;
    END IF;

    -- THE LOCK, as in claim_coupons_v1: every path that creates, releases or expires a claim
    -- locks the coupon row first, so they queue here one at a time and what is left below is
    -- what the previous holder committed: no oversell. Lock order coupon row -> idempotency
    -- keys (sorted) -> claim rows (the due holds expired below, then the new claims): no
    -- deadlock.
    SELECT * INTO v_coupon FROM coupon WHERE id = p_coupon_id FOR NO KEY UPDATE;
    v_none_left := claim_refusal_v1(p_coupon_id, v_coupon, 0, p_now);
    v_claimed_at := iso_utc_v1(p_now);
    v_expires := p_now + make_interval(secs => v_coupon.hold_seconds);

    IF v_keyed THEN
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

    -- Expiry at this instant, under the lock: when the coupon can be claimed and any of its
    -- holds is due, expire the due holds of this batch's users (so the limit below counts
    -- only what they really hold) and, oldest first, as many others as the batch may need
    -- beyond what is left. Each becomes 'expired' with its ledger row and its unit back, in
    -- this transaction, before anything is decided: a claim one millisecond after a hold
    -- expired takes that unit even if no sweeper ran. One index probe when nothing is due.
    IF claim_refusal_v1(p_coupon_id, v_coupon, 1, p_now) IS NULL AND EXISTS (
        SELECT 1 FROM claim AS c
        WHERE c.coupon_id = p_coupon_id AND c.status = 'claimed'
          AND c.expires_at IS NOT NULL AND c.expires_at <= p_now) THEN
        v_coupon.quantity := v_coupon.quantity
            + expire_holds_v1(p_coupon_id, p_user_ids, n - v_coupon.quantity, p_now);
    END IF;
    v_refusal := claim_refusal_v1(p_coupon_id, v_coupon, v_coupon.quantity, p_now);

    -- Decide the whole batch in one statement, as claim_coupons_v1 does (its comments say
    -- why each rule holds). A live claim is 'claimed' or 'redeemed': the due holds of these
    -- users were expired above, and one a redeemer holds right now still counts (it may be
    -- redeemed), so the limit is never exceeded.
    WITH element AS (
        SELECT e.ord::integer AS ord, e.user_id, e.code, e.key, e.hash,
               v_stored -> e.key AS stored,
               CASE WHEN e.key IS NULL THEN e.ord::integer
                    WHEN NOT v_stored ? e.key THEN array_position(p_idempotency_keys, e.key)
               END AS decided_by
        FROM unnest(p_user_ids, p_codes, p_idempotency_keys, p_request_hashes)
                 WITH ORDINALITY AS e(user_id, code, key, hash, ord)
    ),
    fit AS (
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
              AND c.status IN ('claimed', 'redeemed')) AS l
        WHERE e.decided_by = e.ord
    ),
    decided AS (
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
        SELECT d.ord, d.hash, d.outcome, g.id,
               CASE d.outcome WHEN 'granted' THEN 201 WHEN 'not_found' THEN 404 ELSE 409 END
                   AS status,
               CASE d.outcome
                   WHEN 'granted' THEN jsonb_build_object(
                       'id', g.id, 'coupon_id', p_coupon_id, 'user_id', d.user_id,
                       'code', d.code, 'status', 'claimed', 'claimed_at', v_claimed_at,
                       'expires_at', iso_utc_v1(v_expires))
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
        SELECT g.id, p_coupon_id, g.user_id, g.code, 'claimed', p_now, v_expires
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
