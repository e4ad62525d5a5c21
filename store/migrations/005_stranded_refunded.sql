-- Nothing stranded, nothing silent; and the REFUNDED status.
--
-- Orders may end REFUNDED; an order remembers what WeChat says was paid
-- under its transaction (paid_fen) and how much of it was refunded.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('PENDING', 'PAID', 'CLOSED', 'REVIEW', 'REFUNDED'));
ALTER TABLE order_logs DROP CONSTRAINT order_logs_from_status_check;
ALTER TABLE order_logs ADD CONSTRAINT order_logs_from_status_check
    CHECK (from_status IN ('', 'PENDING', 'PAID', 'CLOSED', 'REVIEW', 'REFUNDED'));
ALTER TABLE order_logs DROP CONSTRAINT order_logs_to_status_check;
ALTER TABLE order_logs ADD CONSTRAINT order_logs_to_status_check
    CHECK (to_status IN ('PENDING', 'PAID', 'CLOSED', 'REVIEW', 'REFUNDED'));
ALTER TABLE orders ADD COLUMN paid_fen bigint CHECK (paid_fen > 0);
UPDATE orders SET paid_fen = amount_fen WHERE status = 'PAID';
ALTER TABLE orders ADD COLUMN refunded_fen bigint NOT NULL DEFAULT 0;
-- Never refunded beyond what was paid.
ALTER TABLE orders ADD CONSTRAINT orders_refunded_within_paid
    CHECK (refunded_fen >= 0 AND refunded_fen <= coalesce(paid_fen, 0));
-- A REFUNDED order was paid, and all of it came back.
ALTER TABLE orders ADD CONSTRAINT orders_refunded_is_whole
    CHECK (status <> 'REFUNDED' OR (transaction_id IS NOT NULL AND refunded_fen = paid_fen));

-- The safety net pages through PENDING orders by out_trade_no.
CREATE INDEX orders_pending_no_idx ON orders (out_trade_no) WHERE status = 'PENDING';

-- The audit trail says what each notification is about and when the
-- order's workflow examined it; the safety net hands notifications that
-- were acknowledged but never examined to a new run.
ALTER TABLE notifications ADD COLUMN kind text NOT NULL DEFAULT ''
    CHECK (kind IN ('', 'refund', 'other'));
ALTER TABLE notifications ADD COLUMN event_type text;
ALTER TABLE notifications ADD COLUMN examined_at timestamptz;
-- Notifications of decided orders were examined by the code before this
-- column existed; those of PENDING orders are looked at again, once.
UPDATE notifications n SET examined_at = n.received_at
    FROM orders o WHERE o.out_trade_no = n.out_trade_no AND o.status <> 'PENDING';
CREATE INDEX notifications_unexamined_idx ON notifications (received_at, id)
    WHERE examined_at IS NULL;

-- The inbox relay never blocks behind one row: each row keeps its
-- attempts and when to try it next, and is parked after too many.
ALTER TABLE notifications DROP CONSTRAINT notifications_inbox_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_inbox_state_check
    CHECK (inbox_state IN ('pending', 'delivered', 'parked'));
ALTER TABLE notifications ADD COLUMN inbox_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE notifications ADD COLUMN inbox_next_attempt_at timestamptz;
ALTER TABLE notifications ADD COLUMN inbox_last_error text;
DROP INDEX notifications_inbox_pending_idx;
CREATE INDEX notifications_inbox_pending_idx ON notifications (coalesce(inbox_next_attempt_at, received_at))
    WHERE inbox_state = 'pending';

---- create above / drop below ----
DROP INDEX orders_pending_no_idx;
DROP INDEX notifications_inbox_pending_idx;
CREATE INDEX notifications_inbox_pending_idx ON notifications (received_at) WHERE inbox_state = 'pending';
ALTER TABLE notifications DROP COLUMN inbox_last_error;
ALTER TABLE notifications DROP COLUMN inbox_next_attempt_at;
ALTER TABLE notifications DROP COLUMN inbox_attempts;
ALTER TABLE notifications DROP CONSTRAINT notifications_inbox_state_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_inbox_state_check
    CHECK (inbox_state IN ('pending', 'delivered'));
DROP INDEX notifications_unexamined_idx;
ALTER TABLE notifications DROP COLUMN examined_at;
ALTER TABLE notifications DROP COLUMN event_type;
ALTER TABLE notifications DROP COLUMN kind;
ALTER TABLE orders DROP CONSTRAINT orders_refunded_is_whole;
ALTER TABLE orders DROP CONSTRAINT orders_refunded_within_paid;
ALTER TABLE orders DROP COLUMN refunded_fen;
ALTER TABLE orders DROP COLUMN paid_fen;
