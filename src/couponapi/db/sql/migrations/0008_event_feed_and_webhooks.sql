-- The event feed (GET /api/v2/events) and the webhooks that deliver it.
--
-- The feed is the ledger itself: claim_event (grants, releases, redemptions, expiries), v1's
-- coupon_given_events (its gives) and a new coupon_event (created, updated, sold out), each
-- written in the transaction that makes the change, each row carrying that transaction's id (xid8, pg_current_xact_id()). A reader
-- pages in (xid, id) order and only below the xmin of its statement's snapshot: every
-- transaction with a smaller id has ended, so no row can later appear before a cursor it was
-- given (docs/design.md#the-event-feed says why that cannot skip an event). The claim path
-- pays no lock and no round trip for it: one more column and index entry per ledger row.

-- One id sequence for every ledger (v2's claim_event, v1's coupon_given_events, and the new
-- coupon_event), so an event's id is unique and (xid, id) orders every event. v1's rows are
-- renumbered after every id in use (their order kept): their old ids could equal claim_event's.
CREATE SEQUENCE event_id_seq;
SELECT setval('event_id_seq', greatest((SELECT max(id) FROM claim_event),
                                       (SELECT max(id) FROM coupon_given_events), 0) + 1, false);
ALTER TABLE coupon_given_events ALTER COLUMN id DROP IDENTITY;
UPDATE coupon_given_events AS g
SET id = r.new_id
FROM (SELECT o.id, nextval('event_id_seq') AS new_id
      FROM (SELECT id FROM coupon_given_events ORDER BY id) AS o) AS r
WHERE g.id = r.id;
ALTER TABLE coupon_given_events ALTER COLUMN id SET DEFAULT nextval('event_id_seq');
ALTER TABLE claim_event ALTER COLUMN id DROP IDENTITY;
ALTER TABLE claim_event ALTER COLUMN id SET DEFAULT nextval('event_id_seq');
ALTER SEQUENCE event_id_seq OWNED BY claim_event.id;

-- Rows written before this migration all come before any later transaction: xid 3 (the first
-- normal one) keeps them first, in id order. The default applies to every row after it.
ALTER TABLE claim_event ADD COLUMN xid xid8 NOT NULL DEFAULT '3';
ALTER TABLE claim_event ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
ALTER TABLE coupon_given_events ADD COLUMN xid xid8 NOT NULL DEFAULT '3';
ALTER TABLE coupon_given_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();

-- The feed's order, and a coupon's feed (which also serve the audit's counts per coupon: v1's
-- by the uuid its text column holds).
CREATE INDEX claim_event_feed_idx ON claim_event (xid, id);
DROP INDEX claim_event_coupon_idx;
CREATE INDEX claim_event_coupon_idx ON claim_event (coupon_id, xid, id);
CREATE INDEX coupon_given_events_feed_idx ON coupon_given_events (xid, id);
DROP INDEX coupon_given_events_couponid_idx;
CREATE INDEX coupon_given_events_couponid_idx
    ON coupon_given_events ((couponid::uuid), xid, id);

-- A coupon's changes: created, updated (a PATCH, or any change of its rules or total) and
-- sold_out (what is left reached 0 with no hold due). `data` is the coupon as the API showed
-- it at that instant, kept because its counts cannot be read back later (json, not jsonb:
-- its fields stay in the API's order, as in every event's data).
CREATE TABLE coupon_event
(
    id          bigint      NOT NULL DEFAULT nextval('event_id_seq')
        CONSTRAINT coupon_event_pk PRIMARY KEY,
    xid         xid8        NOT NULL DEFAULT pg_current_xact_id(),
    coupon_id   uuid        NOT NULL,
    kind        text        NOT NULL
        CONSTRAINT coupon_event_kind_known CHECK (kind IN ('created', 'updated', 'sold_out')),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    data        json        NOT NULL
);
CREATE INDEX coupon_event_feed_idx ON coupon_event (xid, id);
CREATE INDEX coupon_event_coupon_idx ON coupon_event (coupon_id, xid, id);

-- A coupon as the API shows it (CouponPublic), as of now: what is left counts the holds that
-- are due, as every read does.
CREATE FUNCTION coupon_public_v1(p_coupon coupon)
    RETURNS json
    LANGUAGE sql STABLE AS
$$
SELECT json_build_object(
    'id', p_coupon.id, 'name', p_coupon.name, 'type', p_coupon.type,
    'quantity', p_coupon.total_quantity,
    'remaining', p_coupon.quantity + due_holds_v1(p_coupon.id, now()),
    'claimed', p_coupon.total_quantity - p_coupon.quantity - due_holds_v1(p_coupon.id, now()),
    'redeemed', (SELECT count(*) FROM claim AS r
                 WHERE r.coupon_id = p_coupon.id AND r.status = 'redeemed'),
    'per_user_limit', p_coupon.per_user_limit,
    'starts_at', iso_utc_v1(p_coupon.starts_at), 'ends_at', iso_utc_v1(p_coupon.ends_at),
    'paused', p_coupon.paused, 'created_at', iso_utc_v1(p_coupon.created_at),
    'hold_seconds', p_coupon.hold_seconds)
$$;

-- The row triggers below write a coupon's events in the transaction that changes it, so
-- every path (v1 and v2, a PATCH, a grant, the sweeper) is covered by one definition.
CREATE FUNCTION log_coupon_event() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    INSERT INTO coupon_event (coupon_id, kind, data)
    VALUES (NEW.id, TG_ARGV[0], coupon_public_v1(NEW));
    RETURN NULL;
END;
$$;
CREATE TRIGGER coupon_created_event
    AFTER INSERT ON coupon
    FOR EACH ROW EXECUTE FUNCTION log_coupon_event('created');
-- A grant changes only quantity: its UPDATE is compared here and writes nothing.
CREATE TRIGGER coupon_changed_event
    AFTER UPDATE ON coupon
    FOR EACH ROW
    WHEN ((OLD.name, OLD.type, OLD.total_quantity, OLD.per_user_limit, OLD.starts_at,
           OLD.ends_at, OLD.paused, OLD.hold_seconds)
          IS DISTINCT FROM
          (NEW.name, NEW.type, NEW.total_quantity, NEW.per_user_limit, NEW.starts_at,
           NEW.ends_at, NEW.paused, NEW.hold_seconds))
    EXECUTE FUNCTION log_coupon_event('updated');
-- Once each time what is left reaches 0: the UPDATE that takes it from above 0 to 0, unless a
-- hold is due (then the coupon is not sold out: that unit is back for the next claim). The
-- conditions are checked in order; the count of due holds runs only on that last UPDATE.
-- Written at commit (a deferred constraint trigger), so it comes after every other event of
-- its transaction: the grant that took the last unit (v1 gives update the quantity before
-- they write their ledger row) and the PATCH that cut the total.
CREATE CONSTRAINT TRIGGER coupon_sold_out_event
    AFTER UPDATE OF quantity ON coupon
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    WHEN (OLD.quantity > 0 AND NEW.quantity = 0 AND due_holds_v1(NEW.id, now()) = 0)
    EXECUTE FUNCTION log_coupon_event('sold_out');

-- Every event as the feed shows it: type, when, and `data` (the claim just after the change,
-- the coupon as it was then, or v1's grant). A claim's fields never change but its status and
-- the time it ended, so its data is derived from the ledger row here rather than stored.
CREATE VIEW event_feed AS
SELECT e.id, e.xid, e.coupon_id, 'claim.' || e.kind AS type, e.occurred_at,
       json_build_object(
           'id', c.id, 'coupon_id', c.coupon_id, 'user_id', c.user_id, 'code', c.code,
           'status', CASE e.kind WHEN 'granted' THEN 'claimed' ELSE e.kind END,
           'claimed_at', iso_utc_v1(c.claimed_at),
           'released_at', CASE e.kind WHEN 'released' THEN iso_utc_v1(e.occurred_at) END,
           'redeemed_at', CASE e.kind WHEN 'redeemed' THEN iso_utc_v1(e.occurred_at) END,
           'expires_at', iso_utc_v1(c.expires_at)) AS data
FROM claim_event AS e
JOIN claim AS c ON c.id = e.claim_id
UNION ALL
SELECT v.id, v.xid, v.coupon_id, 'coupon.' || v.kind, v.occurred_at, v.data
FROM coupon_event AS v
UNION ALL
-- A v1 give (the original API's grant: no claim, no code), as v1's ledger row says it.
SELECT g.id, g.xid, g.couponid::uuid, 'coupon.given', g.given_at,
       json_build_object('id', g.id, 'coupon_id', g.couponid::uuid, 'user_id', g.userid,
                          'quantity_left', g.newquantity, 'given_at', iso_utc_v1(g.given_at))
FROM coupon_given_events AS g;

-- ---- webhooks ----------------------------------------------------------------------------

-- An endpoint that receives the feed: its URL, the event types it wants (NULL: all), its
-- Standard Webhooks secret, and where it stands in the feed. after_xid/after_id is the last
-- event delivered to it (or passed over); `attempts` the failed attempts of the next one,
-- retried at next_attempt_at. A sender leases the endpoint (leased_by until leased_until)
-- for one run of deliveries, with no transaction open meanwhile.
CREATE TABLE webhook_endpoint
(
    id              uuid        NOT NULL DEFAULT gen_random_uuid()
        CONSTRAINT webhook_endpoint_pk PRIMARY KEY,
    url             text        NOT NULL,
    event_types     text[],
    secret          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    disabled_at     timestamptz,
    disabled_reason text,
    after_xid       xid8        NOT NULL,
    after_id        bigint      NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0,
    failing_since   timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    leased_by       text,
    leased_until    timestamptz
);

-- Every attempt to deliver an event to an endpoint: the HTTP status, or the error, and a
-- bounded excerpt of the answer.
CREATE TABLE webhook_delivery
(
    id           bigint      GENERATED ALWAYS AS IDENTITY
        CONSTRAINT webhook_delivery_pk PRIMARY KEY,
    endpoint_id  uuid        NOT NULL
        CONSTRAINT webhook_delivery_endpoint_fk REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_id     bigint      NOT NULL,
    attempt      integer     NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    error        text,
    response     text,
    duration_ms  integer     NOT NULL
);
CREATE INDEX webhook_delivery_endpoint_idx ON webhook_delivery (endpoint_id, id);
CREATE INDEX webhook_delivery_attempted_idx ON webhook_delivery (attempted_at);
