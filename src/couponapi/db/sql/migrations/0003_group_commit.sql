-- Group commit for v1: give one coupon to a whole batch of users in one transaction.
-- The caller (couponapi.strategies.group_commit) gathers concurrent claims in arrival order;
-- this function grants them in that order until the coupon runs out and answers one row per
-- input, in input order: ('granted', quantity left after that grant), ('sold_out', 0) or
-- ('not_found', NULL). One ledger row per grant, written in the same transaction.
CREATE FUNCTION give_coupons_to_users(coupon_id uuid, user_ids text[])
    RETURNS TABLE (outcome text, quantity_left integer) AS
$$
declare
    available integer;
    granted   integer;
begin
    -- A plain read first, no lock: a sold-out or unknown coupon is refused without taking
    -- the row lock or writing anything, so a crowd at a sold-out coupon never queues.
    -- Refusing on this snapshot is safe: quantity was 0 when it was taken, and the claim is
    -- ordered at that moment (a later release or PATCH is a later event).
    select c.quantity into available from coupon c where c.id = coupon_id;
    if not found or available = 0 then
        return query select case when found then 'sold_out' else 'not_found' end,
                            case when found then 0 end
                     from unnest(user_ids);
        return;
    end if;

    -- FOR UPDATE: concurrent batches (other processes, other machines) queue here, so the
    -- quantity read below is the one the previous committed batch left, and the whole batch
    -- is decided against it: at most `available` grants, never an oversell. One row lock
    -- per transaction, so no lock-order cycle and no deadlock.
    select c.quantity into available from coupon c where c.id = coupon_id for update;
    if not found then  -- deleted since the plain read
        return query select 'not_found'::text, null::integer from unnest(user_ids);
        return;
    end if;

    granted := least(available, coalesce(cardinality(user_ids), 0));  -- NULL array: none
    if granted > 0 then
        update coupon c set quantity = c.quantity - granted where c.id = coupon_id;
        insert into coupon_given_events (couponid, userid, newquantity)
        select coupon_id::text, t.user_id, available - t.n::integer
        from unnest(user_ids[1:granted]) with ordinality as t(user_id, n)
        order by t.n;
    end if;

    -- Arrival order decides who is served when the batch is larger than what is left.
    return query
        select case when t.n <= granted then 'granted' else 'sold_out' end,
               case when t.n <= granted then available - t.n::integer else 0 end
        from unnest(user_ids) with ordinality as t(user_id, n)
        order by t.n;
end;
$$ LANGUAGE plpgsql;
