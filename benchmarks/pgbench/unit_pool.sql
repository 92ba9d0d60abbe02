-- The pre-made unit pool alternative (not in the schema; the suite makes bench_coupon_unit):
-- each claim takes any free unit row with SKIP LOCKED, so claimers do not queue on one row,
-- and logs the grant. One claim per transaction.
WITH unit AS (
    UPDATE bench_coupon_unit SET user_id = 'pgbench'
    WHERE id = (SELECT id FROM bench_coupon_unit
                WHERE coupon_id = :coupon::uuid AND user_id IS NULL
                LIMIT 1 FOR UPDATE SKIP LOCKED)
    RETURNING coupon_id
)
INSERT INTO coupon_given_events (couponid, userid, newquantity)
SELECT coupon_id::text, 'pgbench', 0 FROM unit;
