-- The function strategy: give_coupon_to_user, one claim per transaction.
SELECT give_coupon_to_user(:coupon::uuid, 'pgbench');
