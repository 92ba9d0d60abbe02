-- Every query the service runs, each under a name and a one-line description.
-- couponapi.db.queries loads this file once; the strategies say which locks each one takes.

-- name: get_coupon
-- One coupon by id, without locking it.
SELECT id, name, type, quantity FROM coupon WHERE id = $1;

-- name: list_coupons
-- Every coupon, oldest id order, without locking.
SELECT id, name, type, quantity FROM coupon ORDER BY id;

-- name: insert_coupon
-- Create a coupon; a duplicate id raises unique_violation.
INSERT INTO coupon (id, name, type, quantity) VALUES ($1, $2, $3, $4)
RETURNING id, name, type, quantity;

-- name: read_quantity
-- What is left, read with no lock (the naive strategy's first step).
SELECT quantity FROM coupon WHERE id = $1;

-- name: write_quantity
-- Overwrite what is left with a value computed by the caller (the naive strategy's lost update).
UPDATE coupon SET quantity = $2 WHERE id = $1;

-- name: lock_quantity
-- What is left, with the row locked until the transaction ends.
SELECT quantity FROM coupon WHERE id = $1 FOR UPDATE;

-- name: decrement_quantity
-- Take one from what is left; the caller holds the row lock.
UPDATE coupon SET quantity = quantity - 1 WHERE id = $1 RETURNING quantity;

-- name: insert_given_event
-- Record one grant in the v1 ledger.
INSERT INTO coupon_given_events (couponid, userid, newquantity) VALUES ($1::uuid::text, $2, $3);

-- name: give_with_function
-- Give one coupon with the PL/pgSQL function; returns the quantity left.
SELECT give_coupon_to_user($1, $2);
