-- claim_coupons_v1, decided set-based. Same signature, rows and contract as in
-- 0002 (documented there); what changes is the cost. A refusal that holds for everyone is
-- answered from a plain read, with no lock and no write, when no key needs storing; otherwise
-- one statement decides the whole batch (instead of a loop of per-element jsonb work), then
-- the claims, the quantity and the keys' answers are written set-based, as before.

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

CREATE OR REPLACE FUNCTION claim_coupons_v1(
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
