-- Orders, their history, and the payment notifications we received.

CREATE TABLE orders (
    out_trade_no   text PRIMARY KEY,
    amount_fen     bigint NOT NULL CHECK (amount_fen > 0),
    currency       text NOT NULL DEFAULT 'CNY',
    description    text NOT NULL DEFAULT '',
    status         text NOT NULL CHECK (status IN ('PENDING', 'PAID', 'CLOSED', 'REVIEW')),
    transaction_id text,
    paid_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- A PAID order always says which transaction paid it and when.
    CONSTRAINT orders_paid_has_transaction
        CHECK (status <> 'PAID' OR (transaction_id IS NOT NULL AND paid_at IS NOT NULL))
);

-- A WeChat transaction pays exactly one order.
CREATE UNIQUE INDEX orders_transaction_id_key ON orders (transaction_id)
    WHERE transaction_id IS NOT NULL;

CREATE TABLE order_logs (
    id              bigserial PRIMARY KEY,
    out_trade_no    text NOT NULL REFERENCES orders (out_trade_no),
    -- '' is the from_status of the row that records the order's creation.
    from_status     text NOT NULL CHECK (from_status IN ('', 'PENDING', 'PAID', 'CLOSED', 'REVIEW')),
    to_status       text NOT NULL CHECK (to_status IN ('PENDING', 'PAID', 'CLOSED', 'REVIEW')),
    remarks         text NOT NULL,
    idempotency_key text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A retried write carries the same key and becomes a no-op.
    CONSTRAINT order_logs_idempotency_key UNIQUE (out_trade_no, idempotency_key)
);

CREATE TABLE notifications (
    id             text PRIMARY KEY,
    source         text,
    out_trade_no   text,
    transaction_id text,
    amount_fen     bigint,
    content        jsonb NOT NULL,
    outcome        text NOT NULL,
    received_at    timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX notifications_out_trade_no_idx ON notifications (out_trade_no);

---- create above / drop below ----

DROP TABLE notifications;
DROP TABLE order_logs;
DROP TABLE orders;
