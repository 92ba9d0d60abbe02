-- The locking strategy's transaction (give-transaction): lock, check, decrement, log.
BEGIN;
SELECT quantity FROM coupon WHERE id = :coupon::uuid FOR UPDATE;
UPDATE coupon SET quantity = quantity - 1 WHERE id = :coupon::uuid RETURNING quantity AS left \gset
INSERT INTO coupon_given_events (couponid, userid, newquantity) VALUES (:coupon, 'pgbench', :left);
END;
