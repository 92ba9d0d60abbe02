-- The v1 group-commit batch: give_coupons_to_users with :batch users in one transaction.
SELECT count(*) FROM give_coupons_to_users(:coupon::uuid, array_fill('pgbench'::text, ARRAY[:batch::int]));
