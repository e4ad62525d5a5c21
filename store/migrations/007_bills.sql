-- Daily reconciliation against WeChat's trade bill. A run is one attempt
-- at one day; a difference is one disagreement between the bill and our
-- books, kept once per (merchant, day, kind, order, refund) across runs so
-- that a re-run neither repeats an action already taken nor loses a
-- difference; each run links the differences it saw.
CREATE TABLE bill_runs (
    mch_id      text NOT NULL,
    bill_date   date NOT NULL,             -- the Beijing day the bill covers
    run_id      text NOT NULL,             -- the Temporal run of the day's workflow
    status      text NOT NULL
        CHECK (status IN ('RUNNING', 'MATCHED', 'DIFFERENCES', 'NO_BILL', 'FAILED')),
    bill_rows   bigint NOT NULL DEFAULT 0, -- detail rows of the bill
    matched     bigint NOT NULL DEFAULT 0, -- bill rows that agree with our books
    loaded_rows bigint,                    -- rows in the run's staging table once loaded
    diffed_at   timestamptz,               -- when the differences were computed
    error       text NOT NULL DEFAULT '',
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (mch_id, bill_date, run_id),
    CONSTRAINT bill_runs_finished_when_done CHECK ((status = 'RUNNING') = (finished_at IS NULL))
);
CREATE INDEX bill_runs_latest_idx ON bill_runs (mch_id, bill_date, started_at DESC);

CREATE TABLE bill_differences (
    id                bigserial PRIMARY KEY,
    mch_id            text NOT NULL,
    bill_date         date NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('paid_at_wechat_only', 'paid_here_only', 'amount_mismatch',
                                                    'unknown_order', 'refund_unknown', 'refund_status')),
    out_trade_no      text NOT NULL,
    out_refund_no     text NOT NULL DEFAULT '', -- '' for a payment
    transaction_id    text NOT NULL DEFAULT '',
    refund_id         text NOT NULL DEFAULT '',
    wechat_amount_fen bigint,                   -- NULL when WeChat's bill has no such row
    our_amount_fen    bigint,                   -- NULL when we have no such order or refund
    our_status        text NOT NULL DEFAULT '', -- the order's (or refund's) status when compared
    bill_status       text NOT NULL DEFAULT '', -- the refund's status in the bill
    action            text NOT NULL DEFAULT '', -- what was done about it
    action_done_at    timestamptz,              -- NULL until the action was taken
    first_run_id      text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bill_differences_once UNIQUE (mch_id, bill_date, kind, out_trade_no, out_refund_no)
);

CREATE TABLE bill_run_differences (
    mch_id        text NOT NULL,
    bill_date     date NOT NULL,
    run_id        text NOT NULL,
    difference_id bigint NOT NULL REFERENCES bill_differences (id),
    PRIMARY KEY (mch_id, bill_date, run_id, difference_id),
    FOREIGN KEY (mch_id, bill_date, run_id) REFERENCES bill_runs (mch_id, bill_date, run_id)
);

-- The day's payments on our side, found by their success time.
CREATE INDEX orders_paid_at_idx ON orders (paid_at) WHERE paid_at IS NOT NULL;

---- create above / drop below ----
DROP INDEX orders_paid_at_idx;
DROP TABLE bill_run_differences;
DROP TABLE bill_differences;
DROP TABLE bill_runs;
