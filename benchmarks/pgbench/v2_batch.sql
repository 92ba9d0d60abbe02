-- The v2 group-commit batch: claim_coupons_v1 with :batch new users in one transaction.
SELECT count(*) FROM claim_coupons_v1(:coupon::uuid,
    ARRAY(SELECT gen_random_uuid()::text FROM generate_series(1, :batch::int)),
    ARRAY(SELECT md5(random()::text) FROM generate_series(1, :batch::int)),
    array_fill(NULL::text, ARRAY[:batch::int]), array_fill(NULL::text, ARRAY[:batch::int]));
