-- A batch of claims on many coupons, decided in one set of statements.
--
-- Until now a batch on N coupons called the single-coupon function N times, each in its own
-- subtransaction: a batch spread over 23 coupons paid 23 times the fixed cost a batch on one
-- hot coupon pays once. claim_batch_v1 decides every coupon of a batch at once, with the
-- same rules, locks and answers; claim_coupons_v2 (one coupon) and claim_coupons_many_v1
-- (any coupons) are now both this one function, so the rules are written once.

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
CREATE OR REPLACE FUNCTION claim_coupons_v2(
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
CREATE OR REPLACE FUNCTION claim_coupons_many_v1(
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
