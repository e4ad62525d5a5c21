-- The order lifecycle: when an unpaid order expires, how it is paid, and
-- what WeChat answered to its prepay.

ALTER TABLE orders ADD COLUMN expires_at timestamptz;
ALTER TABLE orders ADD COLUMN trade_type text NOT NULL DEFAULT ''
    CHECK (trade_type IN ('', 'JSAPI', 'NATIVE'));
ALTER TABLE orders ADD COLUMN openid text NOT NULL DEFAULT '';

-- Reconciliation looks for old PENDING orders.
CREATE INDEX orders_pending_created_idx ON orders (created_at) WHERE status = 'PENDING';

-- One prepay per order: params_hash guards against prepaying the same
-- out_trade_no twice with different parameters.
CREATE TABLE prepays (
    out_trade_no text PRIMARY KEY REFERENCES orders (out_trade_no),
    params_hash  text NOT NULL,
    result       jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

---- create above / drop below ----

DROP TABLE prepays;
DROP INDEX orders_pending_created_idx;
ALTER TABLE orders DROP COLUMN openid;
ALTER TABLE orders DROP COLUMN trade_type;
ALTER TABLE orders DROP COLUMN expires_at;
