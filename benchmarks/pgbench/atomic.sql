-- The atomic strategy's statement (queries.sql give_atomic), one claim per transaction.
WITH taken AS (
    UPDATE coupon SET quantity = quantity - 1 WHERE id = :coupon::uuid AND quantity > 0
    RETURNING id, quantity
), logged AS (
    INSERT INTO coupon_given_events (couponid, userid, newquantity)
    SELECT id::text, 'pgbench', quantity FROM taken RETURNING newquantity
)
SELECT newquantity, true FROM logged
UNION ALL
SELECT NULL, EXISTS (SELECT 1 FROM coupon WHERE id = :coupon::uuid)
WHERE NOT EXISTS (SELECT 1 FROM taken);
