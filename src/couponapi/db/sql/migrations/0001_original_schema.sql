-- The original project's tables and function (the contract in shared/seed), with what a real
-- ledger needs added: a primary key, a timestamp, an index on the coupon, and a check that
-- the quantity never goes below zero.

CREATE TABLE coupon
(
    id       uuid    NOT NULL
        CONSTRAINT coupon_pk PRIMARY KEY,
    name     text,
    type     text    NOT NULL,
    -- What is left to give. Every safe strategy decrements it under a row lock; the check
    -- makes an oversell by "quantity - 1" impossible even for a buggy path.
    quantity integer NOT NULL
        CONSTRAINT coupon_quantity_not_negative CHECK (quantity >= 0)
);
-- The original also had "create unique index coupon_id_uindex on coupon (id)": it duplicates
-- the primary key's index, costs a write on every insert, and is left out.

-- The ledger of grants: one row per coupon given, written in the transaction that gives it.
CREATE TABLE coupon_given_events
(
    id          bigint      GENERATED ALWAYS AS IDENTITY
        CONSTRAINT coupon_given_events_pk PRIMARY KEY,
    couponid    text        NOT NULL,
    userid      text        NOT NULL,
    newquantity integer     NOT NULL,
    given_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX coupon_given_events_couponid_idx ON coupon_given_events (couponid);

-- The original function, same name and arguments. Two changes: it returns the new quantity
-- (a caller that ignores the result still works), and an unknown coupon raises
-- no_data_found instead of 'Coupon run out!', so the API can answer 404 rather than 409.
CREATE FUNCTION give_coupon_to_user(couponId uuid, userId text) RETURNS integer AS
$$
declare
    quantity_of_coupon integer;
begin
    -- FOR UPDATE: every giver of this coupon queues here, so the check below reads the
    -- quantity left by the previous committed giver and cannot oversell; one row lock per
    -- transaction means no lock-order cycle, so no deadlock.
    select quantity
    into quantity_of_coupon
    from coupon
    WHERE id = couponId
    FOR UPDATE;

    IF NOT FOUND THEN
        RAISE EXCEPTION 'Coupon not found!' USING ERRCODE = 'no_data_found';
    END IF;

    IF quantity_of_coupon >= 1 THEN
        UPDATE coupon
        SET quantity = quantity - 1
        WHERE id = couponId;

        INSERT INTO coupon_given_events(CouponId, UserId, NewQuantity)
        VALUES (couponId, userId, quantity_of_coupon - 1);
        RETURN quantity_of_coupon - 1;
    ELSE
        RAISE EXCEPTION 'Coupon run out!';
    end if;
end;
$$ LANGUAGE plpgsql;
