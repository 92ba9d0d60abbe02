-- The v2 one-at-a-time claim: claim_coupons_v1 with arrays of one (a new user each time).
SELECT count(*) FROM claim_coupons_v1(:coupon::uuid, ARRAY[gen_random_uuid()::text],
    ARRAY[md5(random()::text)], ARRAY[NULL::text], ARRAY[NULL::text]);
