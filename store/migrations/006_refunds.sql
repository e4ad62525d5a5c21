-- Refunds. WeChat's out_refund_no is unique per merchant, so the key
-- carries the merchant id. Whether a refund may be accepted (what is left
-- to refund, at most 50 per order) is decided in one transaction under the
-- order's row lock; the schema keeps what must always hold.
CREATE TABLE refunds (
    mch_id        text NOT NULL,
    out_refund_no text NOT NULL,
    out_trade_no  text NOT NULL REFERENCES orders (out_trade_no),
    amount_fen    bigint NOT NULL CHECK (amount_fen > 0),
    status        text NOT NULL
        CHECK (status IN ('PROCESSING', 'SUCCESS', 'CLOSED', 'ABNORMAL', 'FAILED')),
    reason        text NOT NULL DEFAULT '',
    source        text NOT NULL CHECK (source IN ('api', 'merchant_portal')),
    refund_id     text,           -- WeChat's, once WeChat gave one
    detail        text NOT NULL DEFAULT '', -- WeChat's reason for FAILED / ABNORMAL
    success_time  timestamptz,
    accepted_at   timestamptz,    -- when WeChat accepted the request (or we learnt of the refund)
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mch_id, out_refund_no),
    CONSTRAINT refunds_success_has_time CHECK (status <> 'SUCCESS' OR success_time IS NOT NULL)
);
CREATE INDEX refunds_order_idx ON refunds (out_trade_no, created_at);
-- Refunds not final yet: the safety net makes sure a workflow follows them.
CREATE INDEX refunds_open_idx ON refunds (out_trade_no) WHERE status IN ('PROCESSING', 'ABNORMAL');
CREATE UNIQUE INDEX refunds_refund_id_key ON refunds (mch_id, refund_id) WHERE refund_id IS NOT NULL;

---- create above / drop below ----
DROP TABLE refunds;
