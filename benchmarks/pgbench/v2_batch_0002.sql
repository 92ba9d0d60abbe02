-- The same batch through the loop migration 0004 replaced (0002's claim_coupons_v1, loaded as
-- claim_coupons_v1_0002 by benchmarks.pgbench): the side-by-side figure for the rewrite.
SELECT count(*) FROM claim_coupons_v1_0002(:coupon::uuid,
    ARRAY(SELECT gen_random_uuid()::text FROM generate_series(1, :batch::int)),
    ARRAY(SELECT md5(random()::text) FROM generate_series(1, :batch::int)),
    array_fill(NULL::text, ARRAY[:batch::int]), array_fill(NULL::text, ARRAY[:batch::int]));
