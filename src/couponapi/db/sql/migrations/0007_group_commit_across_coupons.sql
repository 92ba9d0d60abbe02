-- Group commit across coupons: one transaction for a batch of claims on many coupons.
--
-- A server process gathers the claims waiting for any coupon into one batch (arrival order)
-- and hands it to one of these functions: one statement, so one transaction, one round trip
-- and one WAL flush for the whole batch. They decide nothing themselves. They group the batch
-- by coupon, visit the groups in one global order (coupon id ascending) and call the
-- single-coupon function for each group with that group's elements in arrival order, so
-- every rule, lock and outcome is the single-coupon function's own. Each group runs in its own
-- subtransaction (BEGIN ... EXCEPTION): a group that fails (a constraint, a code collision,
-- a lock timeout, a deadlock victim) is rolled back alone and answered 'failed'; the other
-- groups commit. One row per input element, in input order.
--
-- THE LOCK ORDER, and why it neither oversells nor deadlocks. These functions take no lock of
-- their own: each group's function locks its coupon row first, under which it decides, as it
-- always did (no oversell: what is left is what the previous holder committed). A batch takes
-- those coupon row locks in ascending coupon id and never returns to a lower id, whichever
-- process, host or API (v1 or v2) sent it; every other path holds at most one coupon row. So
-- two batches that share coupons meet first at the lowest shared one, and the one that waits
-- there holds nothing the other still needs: no cycle, no deadlock. A group refused from the
-- plain read (unknown, sold out, paused, outside its window; no key to store) takes no lock
-- at all. Idempotency keys (v2) are reserved after their coupon's lock, sorted within the
-- group; two batches can wait on each other through keys only when one key is sent for two
-- different coupons at once (answered key_conflict in any case): PostgreSQL then detects the
-- deadlock after deadlock_timeout and fails one of the two groups alone.
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

-- v2: element i claims p_coupon_ids[i] for p_user_ids[i], with p_codes[i] as its code if
-- granted and p_idempotency_keys[i] / p_request_hashes[i] (both NULL: no key), exactly as
-- claim_coupons_v2's element would. Rows as claim_coupons_v2's: ord (1-based), outcome,
-- status, body; plus outcome 'failed', status 503, body {"outcome": "failed", "detail",
-- "sqlstate", "constraint"}: the error that rolled its group back (nothing of it written).
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
    IF coalesce(cardinality(p_user_ids), 0) <> n
        OR coalesce(cardinality(p_codes), 0) <> n
        OR coalesce(cardinality(p_idempotency_keys), 0) <> n
        OR coalesce(cardinality(p_request_hashes), 0) <> n THEN
        RAISE EXCEPTION 'claim_coupons_many_v1: the five arrays must have the same length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Ascending coupon id: the one lock order (see THE LOCK ORDER above). Within a group the
    -- elements keep their arrival order, so claim_coupons_v2 serves them first come, first
    -- served, as it serves a single-coupon batch.
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
