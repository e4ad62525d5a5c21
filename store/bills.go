package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Statuses of a bill reconciliation run (docs/interface.md).
const (
	BillRunning     = "RUNNING"
	BillMatched     = "MATCHED"
	BillDifferences = "DIFFERENCES"
	BillNoBill      = "NO_BILL"
	BillFailed      = "FAILED"
)

// Kinds of difference between WeChat's bill and our books.
const (
	DiffPaidAtWeChatOnly = "paid_at_wechat_only" // a SUCCESS trade for an order of ours that is PENDING or CLOSED (or already in REVIEW)
	DiffPaidHereOnly     = "paid_here_only"      // an order paid that day that the bill does not have
	DiffAmountMismatch   = "amount_mismatch"     // bill and order (or refund) disagree on the amount
	DiffUnknownOrder     = "unknown_order"       // a bill row for an out_trade_no we do not have
	DiffRefundUnknown    = "refund_unknown"      // a refund in the bill that we do not know
	DiffRefundStatus     = "refund_status"       // a refund whose status differs
)

// DiffKinds lists the kinds in a fixed order.
func DiffKinds() []string {
	return []string{DiffPaidAtWeChatOnly, DiffPaidHereOnly, DiffAmountMismatch, DiffUnknownOrder, DiffRefundUnknown, DiffRefundStatus}
}

// Kinds of bill row in a run's staging table (bill.Kind's values).
const (
	BillRowPayment = "payment"
	BillRowRefund  = "refund"
	BillRowRevoked = "revoked"
)

var (
	// ErrNoBillRun: no reconciliation of that day has run.
	ErrNoBillRun = errors.New("no reconciliation of that day")
	// ErrBillStageLost: the run's staging table is gone or incomplete (an
	// unlogged table does not survive a PostgreSQL crash): load it again.
	ErrBillStageLost = errors.New("the bill's staging table is gone: load the bill again")
)

// BillRunKey names one run: the merchant, the Beijing day (YYYY-MM-DD) and
// the Temporal run id of the day's workflow.
type BillRunKey struct {
	MchID string `json:"mch_id"`
	Date  string `json:"date"`
	RunID string `json:"run_id"`
}

// BillRun is a run with the differences it saw.
type BillRun struct {
	BillRunKey
	Status      string           `json:"status"`
	BillRows    int64            `json:"bill_rows"`
	Matched     int64            `json:"matched"`
	Error       string           `json:"error"`
	StartedAt   time.Time        `json:"started_at"`
	FinishedAt  *time.Time       `json:"finished_at"`
	Differences []BillDifference `json:"differences"`
	// Truncated is set when the run saw more differences than were read.
	Truncated bool `json:"-"`
}

// BillDifference is one difference as stored.
type BillDifference struct {
	ID              int64      `json:"id"`
	Kind            string     `json:"kind"`
	OutTradeNo      string     `json:"out_trade_no"`
	OutRefundNo     string     `json:"out_refund_no"`
	TransactionID   string     `json:"transaction_id"`
	RefundID        string     `json:"refund_id"`
	WeChatAmountFen *int64     `json:"wechat_amount_fen"`
	OurAmountFen    *int64     `json:"our_amount_fen"`
	OurStatus       string     `json:"our_status"`
	BillStatus      string     `json:"bill_status"`
	Action          string     `json:"action"`
	ActionDoneAt    *time.Time `json:"action_done_at"`
}

// BillStageRow is one bill row as the comparison needs it.
type BillStageRow struct {
	Kind          string // BillRowPayment, BillRowRefund or BillRowRevoked
	OutTradeNo    string
	TransactionID string
	AmountFen     int64 // the order amount (订单金额) of a payment; the applied amount (申请退款金额) of a refund
	OutRefundNo   string
	RefundID      string
	RefundStatus  string // SUCCESS, PROCESSING, CLOSED or ABNORMAL
}

// BillDiffResult is what comparing a bill with our books found.
type BillDiffResult struct {
	Matched int64          `json:"matched"` // bill rows that agree with our books
	Kinds   map[string]int `json:"kinds"`   // differences of this run, by kind
	New     map[string]int `json:"new"`     // of which first seen in this run
}

// Total is the number of differences of the run.
func (r BillDiffResult) Total() int {
	n := 0
	for _, v := range r.Kinds {
		n += v
	}
	return n
}

// BeginBillRun records a run as RUNNING from startedAt. It is idempotent:
// the api (answering POST /reconciliations) and the workflow's first step
// both call it, whichever comes first creates the row.
func (s *Store) BeginBillRun(ctx context.Context, k BillRunKey, startedAt time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO bill_runs (mch_id, bill_date, run_id, status, started_at)
		VALUES ($1, $2::date, $3, 'RUNNING', coalesce($4, now()))
		ON CONFLICT (mch_id, bill_date, run_id) DO NOTHING`,
		k.MchID, k.Date, k.RunID, nullTime(startedAt))
	if err != nil {
		return fmt.Errorf("begin bill run %s %s: %w", k.Date, k.RunID, err)
	}
	return nil
}

// stageTable is the name of a run's staging table: unlogged, one per run,
// dropped when the run has been compared or has finished.
func stageTable(k BillRunKey) string {
	h := sha256.Sum256([]byte(k.MchID + "\x00" + k.Date + "\x00" + k.RunID))
	return "bill_stage_" + hex.EncodeToString(h[:12])
}

// LoadBillStage loads the bill's rows, as next yields them until io.EOF,
// into the run's staging table with COPY, in one transaction: any error
// from next (a bill that does not check out ends with one) leaves nothing
// behind. It replaces an earlier load of the same run and returns the
// number of rows.
func (s *Store) LoadBillStage(ctx context.Context, k BillRunKey, next func() (BillStageRow, error)) (int64, error) {
	table := pgx.Identifier{stageTable(k)}.Sanitize()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("load bill %s: %w", k.Date, err)
	}
	defer tx.Rollback(ctx)
	var status string
	err = tx.QueryRow(ctx, `SELECT status FROM bill_runs WHERE mch_id = $1 AND bill_date = $2::date AND run_id = $3 FOR UPDATE`,
		k.MchID, k.Date, k.RunID).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("load bill %s: run %s: %w", k.Date, k.RunID, ErrNoBillRun)
	}
	if err != nil {
		return 0, fmt.Errorf("load bill %s: %w", k.Date, err)
	}
	if status != BillRunning {
		return 0, fmt.Errorf("load bill %s: run %s is %s already", k.Date, k.RunID, status)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+table); err != nil {
		return 0, fmt.Errorf("load bill %s: %w", k.Date, err)
	}
	if _, err := tx.Exec(ctx, `CREATE UNLOGGED TABLE `+table+` (
		kind text NOT NULL, out_trade_no text NOT NULL, transaction_id text NOT NULL, amount_fen bigint NOT NULL,
		out_refund_no text NOT NULL, refund_id text NOT NULL, refund_status text NOT NULL)`); err != nil {
		return 0, fmt.Errorf("load bill %s: create staging table: %w", k.Date, err)
	}
	src := &stageSource{next: next}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{stageTable(k)},
		[]string{"kind", "out_trade_no", "transaction_id", "amount_fen", "out_refund_no", "refund_id", "refund_status"}, src)
	if src.err != nil {
		return 0, fmt.Errorf("load bill %s: %w", k.Date, src.err)
	}
	if err != nil {
		return 0, fmt.Errorf("load bill %s: copy: %w", k.Date, err)
	}
	// A fresh table has no statistics: without them the planner may join a
	// million rows with nested loops.
	if _, err := tx.Exec(ctx, `ANALYZE `+table); err != nil {
		return 0, fmt.Errorf("load bill %s: analyze: %w", k.Date, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE bill_runs SET loaded_rows = $4, bill_rows = $4
		WHERE mch_id = $1 AND bill_date = $2::date AND run_id = $3`, k.MchID, k.Date, k.RunID, n); err != nil {
		return 0, fmt.Errorf("load bill %s: %w", k.Date, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("load bill %s: %w", k.Date, err)
	}
	return n, nil
}

// stageSource adapts next to pgx's CopyFromSource, reusing one value slice.
type stageSource struct {
	next func() (BillStageRow, error)
	row  BillStageRow
	vals []any
	err  error
}

func (s *stageSource) Next() bool {
	row, err := s.next()
	if err == io.EOF {
		return false
	}
	if err != nil {
		s.err = err
		return false
	}
	s.row = row
	return true
}

func (s *stageSource) Values() ([]any, error) {
	r := &s.row
	s.vals = append(s.vals[:0], r.Kind, r.OutTradeNo, r.TransactionID, r.AmountFen, r.OutRefundNo, r.RefundID, r.RefundStatus)
	return s.vals, nil
}

func (s *stageSource) Err() error { return s.err }

// DiffBill compares the run's staging table with our orders and refunds,
// set-based, in one transaction:
//   - each payment row joins its order: no order is unknown_order; an order
//     PENDING or CLOSED is paid_at_wechat_only; another amount is
//     amount_mismatch; an order in REVIEW otherwise is paid_at_wechat_only
//     (listed, its action "already in review");
//   - each refund row joins its order and our refund (by out_refund_no):
//     no order is unknown_order, no refund refund_unknown, an incompatible
//     status refund_status, another amount amount_mismatch;
//   - every order whose paid_at falls in [dayStart, dayEnd) without a
//     payment row is paid_here_only.
//
// The bill's refund status is a snapshot taken when the bill was made: a
// PROCESSING refund there agrees with any status of ours but FAILED, an
// ABNORMAL one with ABNORMAL, SUCCESS or CLOSED; SUCCESS and CLOSED must
// be ours too. Differences are upserted once per (merchant, day, kind,
// out_trade_no, out_refund_no), keeping any action already taken, and
// linked to the run. The staging table is dropped with the commit. A
// repeated call for a run already compared returns the stored result.
func (s *Store) DiffBill(ctx context.Context, k BillRunKey, dayStart, dayEnd time.Time) (BillDiffResult, error) {
	table := pgx.Identifier{stageTable(k)}.Sanitize()
	res := BillDiffResult{Kinds: map[string]int{}, New: map[string]int{}}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
	}
	defer tx.Rollback(ctx)
	var (
		loaded   *int64
		diffedAt *time.Time
		matched  int64
	)
	err = tx.QueryRow(ctx, `SELECT loaded_rows, diffed_at, matched FROM bill_runs
		WHERE mch_id = $1 AND bill_date = $2::date AND run_id = $3 FOR UPDATE`, k.MchID, k.Date, k.RunID).Scan(&loaded, &diffedAt, &matched)
	if errors.Is(err, pgx.ErrNoRows) {
		return res, fmt.Errorf("diff bill %s: run %s: %w", k.Date, k.RunID, ErrNoBillRun)
	}
	if err != nil {
		return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
	}
	if diffedAt != nil { // compared before: answer the same
		res.Matched = matched
		rows, err := tx.Query(ctx, `SELECT d.kind, count(*), count(*) FILTER (WHERE d.first_run_id = $3)
			FROM bill_run_differences l JOIN bill_differences d ON d.id = l.difference_id
			WHERE l.mch_id = $1 AND l.bill_date = $2::date AND l.run_id = $3 GROUP BY d.kind`, k.MchID, k.Date, k.RunID)
		if err != nil {
			return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
		}
		defer rows.Close()
		for rows.Next() {
			var kind string
			var n, fresh int
			if err := rows.Scan(&kind, &n, &fresh); err != nil {
				return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
			}
			res.Kinds[kind], res.New[kind] = n, fresh
		}
		return res, rows.Err()
	}
	if loaded == nil {
		return res, fmt.Errorf("diff bill %s: run %s has loaded no bill: %w", k.Date, k.RunID, ErrBillStageLost)
	}
	var staged int64
	err = tx.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&staged)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return res, fmt.Errorf("diff bill %s: %w", k.Date, ErrBillStageLost)
	}
	if err != nil {
		return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
	}
	if staged != *loaded {
		return res, fmt.Errorf("diff bill %s: %d rows staged of %d loaded: %w", k.Date, staged, *loaded, ErrBillStageLost)
	}
	// Hash joins of a million rows want more than the default 4 MB.
	if _, err := tx.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
		return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
	}

	// The bill's rows against our orders and refunds.
	rows, err := tx.Query(ctx, `
		WITH c AS (
			SELECT s.kind AS row_kind, s.out_trade_no, s.out_refund_no, s.transaction_id, s.refund_id,
				s.amount_fen AS wechat_amount_fen,
				CASE WHEN s.kind = 'refund' THEN f.amount_fen ELSE o.amount_fen END AS our_amount_fen,
				CASE WHEN s.kind = 'refund' THEN coalesce(f.status, '') ELSE coalesce(o.status, '') END AS our_status,
				s.refund_status AS bill_status,
				CASE
				WHEN o.out_trade_no IS NULL THEN 'unknown_order'
				WHEN s.kind = 'payment' THEN CASE
					WHEN o.status IN ('PENDING', 'CLOSED') THEN 'paid_at_wechat_only'
					WHEN o.amount_fen <> s.amount_fen THEN 'amount_mismatch'
					WHEN o.status = 'REVIEW' THEN 'paid_at_wechat_only'
					END
				WHEN s.kind = 'refund' THEN CASE
					WHEN f.out_refund_no IS NULL THEN 'refund_unknown'
					WHEN NOT (f.status = s.refund_status
						OR (s.refund_status = 'PROCESSING' AND f.status <> 'FAILED')
						OR (s.refund_status = 'ABNORMAL' AND f.status IN ('SUCCESS', 'CLOSED'))) THEN 'refund_status'
					WHEN f.amount_fen <> s.amount_fen THEN 'amount_mismatch'
					END
				END AS kind
			FROM `+table+` s
			LEFT JOIN orders o ON o.out_trade_no = s.out_trade_no
			LEFT JOIN refunds f ON s.kind = 'refund' AND f.mch_id = $1 AND f.out_refund_no = s.out_refund_no
		), d AS (
			SELECT DISTINCT ON (kind, out_trade_no, out_refund_no) *
			FROM c WHERE kind IS NOT NULL
			ORDER BY kind, out_trade_no, out_refund_no, transaction_id
		), ins AS (
			INSERT INTO bill_differences AS b (mch_id, bill_date, kind, out_trade_no, out_refund_no, transaction_id, refund_id,
				wechat_amount_fen, our_amount_fen, our_status, bill_status, first_run_id)
			SELECT $1, $2::date, kind, out_trade_no, CASE WHEN row_kind = 'refund' THEN out_refund_no ELSE '' END,
				transaction_id, refund_id, wechat_amount_fen, our_amount_fen, our_status, bill_status, $3
			FROM d
			ON CONFLICT (mch_id, bill_date, kind, out_trade_no, out_refund_no) DO UPDATE SET
				transaction_id = EXCLUDED.transaction_id, refund_id = EXCLUDED.refund_id,
				wechat_amount_fen = EXCLUDED.wechat_amount_fen, our_amount_fen = EXCLUDED.our_amount_fen,
				our_status = EXCLUDED.our_status, bill_status = EXCLUDED.bill_status, updated_at = now()
			RETURNING b.id, b.kind, (xmax = 0) AS inserted
		), link AS (
			INSERT INTO bill_run_differences (mch_id, bill_date, run_id, difference_id)
			SELECT $1, $2::date, $3, id FROM ins
			ON CONFLICT DO NOTHING
		)
		SELECT '', (SELECT count(*) FROM c WHERE kind IS NULL), 0
		UNION ALL
		SELECT kind, count(*), count(*) FILTER (WHERE inserted) FROM ins GROUP BY kind`,
		k.MchID, k.Date, k.RunID)
	if err != nil {
		return res, fmt.Errorf("diff bill %s: compare: %w", k.Date, err)
	}
	if err := collectDiffCounts(rows, &res); err != nil {
		return res, fmt.Errorf("diff bill %s: compare: %w", k.Date, err)
	}

	// Our payments of that day that the bill does not have.
	rows, err = tx.Query(ctx, `
		WITH h AS (
			SELECT o.out_trade_no, coalesce(o.transaction_id, '') AS transaction_id, o.amount_fen, o.status
			FROM orders o
			WHERE o.paid_at >= $4 AND o.paid_at < $5
			AND NOT EXISTS (SELECT 1 FROM `+table+` s WHERE s.kind = 'payment' AND s.out_trade_no = o.out_trade_no)
		), ins AS (
			INSERT INTO bill_differences AS b (mch_id, bill_date, kind, out_trade_no, out_refund_no, transaction_id,
				our_amount_fen, our_status, first_run_id)
			SELECT $1, $2::date, 'paid_here_only', out_trade_no, '', transaction_id, amount_fen, status, $3 FROM h
			ON CONFLICT (mch_id, bill_date, kind, out_trade_no, out_refund_no) DO UPDATE SET
				transaction_id = EXCLUDED.transaction_id, our_amount_fen = EXCLUDED.our_amount_fen,
				our_status = EXCLUDED.our_status, updated_at = now()
			RETURNING b.id, b.kind, (xmax = 0) AS inserted
		), link AS (
			INSERT INTO bill_run_differences (mch_id, bill_date, run_id, difference_id)
			SELECT $1, $2::date, $3, id FROM ins
			ON CONFLICT DO NOTHING
		)
		SELECT kind, count(*), count(*) FILTER (WHERE inserted) FROM ins GROUP BY kind`,
		k.MchID, k.Date, k.RunID, dayStart.UTC(), dayEnd.UTC())
	if err != nil {
		return res, fmt.Errorf("diff bill %s: paid here only: %w", k.Date, err)
	}
	if err := collectDiffCounts(rows, &res); err != nil {
		return res, fmt.Errorf("diff bill %s: paid here only: %w", k.Date, err)
	}

	if _, err := tx.Exec(ctx, `UPDATE bill_runs SET matched = $4, diffed_at = now()
		WHERE mch_id = $1 AND bill_date = $2::date AND run_id = $3`, k.MchID, k.Date, k.RunID, res.Matched); err != nil {
		return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE `+table); err != nil {
		return res, fmt.Errorf("diff bill %s: drop staging table: %w", k.Date, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("diff bill %s: %w", k.Date, err)
	}
	return res, nil
}

// collectDiffCounts reads (kind, count, new) rows; kind "" carries the
// matched count.
func collectDiffCounts(rows pgx.Rows, res *BillDiffResult) error {
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n, fresh int64
		if err := rows.Scan(&kind, &n, &fresh); err != nil {
			return err
		}
		if kind == "" {
			res.Matched = n
			continue
		}
		res.Kinds[kind] += int(n)
		res.New[kind] += int(fresh)
	}
	return rows.Err()
}

// BillActionsPending returns up to limit differences the run saw whose
// action has not been taken, with ids above after, in id order (keyset
// pagination: a difference whose action could not be taken is not
// returned again by the next page).
func (s *Store) BillActionsPending(ctx context.Context, k BillRunKey, after int64, limit int) ([]BillDifference, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+differenceColumns+`
		FROM bill_run_differences l JOIN bill_differences d ON d.id = l.difference_id
		WHERE l.mch_id = $1 AND l.bill_date = $2::date AND l.run_id = $3 AND d.action_done_at IS NULL AND d.id > $4
		ORDER BY d.id LIMIT $5`, k.MchID, k.Date, k.RunID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("pending bill actions %s: %w", k.Date, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (BillDifference, error) { return scanDifference(row) })
	if err != nil {
		return nil, fmt.Errorf("pending bill actions %s: %w", k.Date, err)
	}
	return out, nil
}

// RecordBillAction writes what was done about a difference. With done it
// marks the action taken (once: a difference whose action was taken keeps
// its first record); without, it only notes why nothing was done yet, and
// a later run tries again.
func (s *Store) RecordBillAction(ctx context.Context, id int64, action string, done bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE bill_differences
		SET action = $2, action_done_at = CASE WHEN $3 THEN now() END, updated_at = now()
		WHERE id = $1 AND action_done_at IS NULL`, id, action, done)
	if err != nil {
		return fmt.Errorf("record bill action %d: %w", id, err)
	}
	return nil
}

// FinishBillRun ends a RUNNING run with status (and errText for FAILED)
// and drops its staging table if one is left. A run already finished is
// left as it is. It returns the run as it is now (without differences).
func (s *Store) FinishBillRun(ctx context.Context, k BillRunKey, status, errText string) (BillRun, error) {
	switch status {
	case BillMatched, BillDifferences, BillNoBill, BillFailed:
	default:
		return BillRun{}, fmt.Errorf("finish bill run %s: %q is not a final status", k.Date, status)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return BillRun{}, fmt.Errorf("finish bill run %s: %w", k.Date, err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE bill_runs SET status = $4, error = $5, finished_at = now(),
			bill_rows = CASE WHEN $4 IN ('NO_BILL', 'FAILED') AND diffed_at IS NULL THEN 0 ELSE bill_rows END
		WHERE mch_id = $1 AND bill_date = $2::date AND run_id = $3 AND status = 'RUNNING'`,
		k.MchID, k.Date, k.RunID, status, errText); err != nil {
		return BillRun{}, fmt.Errorf("finish bill run %s: %w", k.Date, err)
	}
	if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{stageTable(k)}.Sanitize()); err != nil {
		return BillRun{}, fmt.Errorf("finish bill run %s: %w", k.Date, err)
	}
	run, err := scanBillRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM bill_runs
		WHERE mch_id = $1 AND bill_date = $2::date AND run_id = $3`, k.MchID, k.Date, k.RunID))
	if errors.Is(err, pgx.ErrNoRows) {
		return BillRun{}, fmt.Errorf("finish bill run %s: run %s: %w", k.Date, k.RunID, ErrNoBillRun)
	}
	if err != nil {
		return BillRun{}, fmt.Errorf("finish bill run %s: %w", k.Date, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return BillRun{}, fmt.Errorf("finish bill run %s: %w", k.Date, err)
	}
	return run, nil
}

// LatestBillRun returns the day's run with the latest started_at and the
// differences it saw (at most maxDifferences, Truncated set beyond), or
// ErrNoBillRun.
func (s *Store) LatestBillRun(ctx context.Context, mchID, date string, maxDifferences int) (BillRun, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return BillRun{}, fmt.Errorf("bill run %s: %w", date, err)
	}
	defer tx.Rollback(ctx)
	run, err := scanBillRun(tx.QueryRow(ctx, `SELECT `+runColumns+` FROM bill_runs
		WHERE mch_id = $1 AND bill_date = $2::date ORDER BY started_at DESC, run_id DESC LIMIT 1`, mchID, date))
	if errors.Is(err, pgx.ErrNoRows) {
		return BillRun{}, fmt.Errorf("bill run %s: %w", date, ErrNoBillRun)
	}
	if err != nil {
		return BillRun{}, fmt.Errorf("bill run %s: %w", date, err)
	}
	rows, err := tx.Query(ctx, `SELECT `+differenceColumns+`
		FROM bill_run_differences l JOIN bill_differences d ON d.id = l.difference_id
		WHERE l.mch_id = $1 AND l.bill_date = $2::date AND l.run_id = $3
		ORDER BY d.kind, d.out_trade_no, d.out_refund_no LIMIT $4`, run.MchID, run.Date, run.RunID, maxDifferences+1)
	if err != nil {
		return BillRun{}, fmt.Errorf("bill run %s: %w", date, err)
	}
	run.Differences, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (BillDifference, error) { return scanDifference(row) })
	if err != nil {
		return BillRun{}, fmt.Errorf("bill run %s: %w", date, err)
	}
	if run.Differences == nil {
		run.Differences = []BillDifference{}
	}
	if len(run.Differences) > maxDifferences {
		run.Differences, run.Truncated = run.Differences[:maxDifferences], true
	}
	return run, nil
}

// PendingBillDays lists, newest first and at most limit, the days from
// from to to (YYYY-MM-DD, inclusive) that have no finished run (MATCHED,
// DIFFERENCES or NO_BILL), leaving out days before the Beijing day of the
// first order: before it the merchant's trades were not ours to reconcile.
func (s *Store) PendingBillDays(ctx context.Context, mchID, from, to string, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT d::date::text FROM generate_series($2::date, $3::date, interval '1 day') AS d
		WHERE d::date >= (SELECT ((min(created_at) AT TIME ZONE 'UTC') + interval '8 hours')::date FROM orders)
		AND NOT EXISTS (SELECT 1 FROM bill_runs r WHERE r.mch_id = $1 AND r.bill_date = d::date
			AND r.status IN ('MATCHED', 'DIFFERENCES', 'NO_BILL'))
		ORDER BY d DESC LIMIT $4`, mchID, from, to, limit)
	if err != nil {
		return nil, fmt.Errorf("pending bill days: %w", err)
	}
	days, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("pending bill days: %w", err)
	}
	return days, nil
}

// LastReconciledBillDay is the latest day with a finished run (MATCHED,
// DIFFERENCES or NO_BILL); ok is false when there is none.
func (s *Store) LastReconciledBillDay(ctx context.Context, mchID string) (day string, ok bool, err error) {
	var d *string
	err = s.pool.QueryRow(ctx, `SELECT max(bill_date)::text FROM bill_runs
		WHERE mch_id = $1 AND status IN ('MATCHED', 'DIFFERENCES', 'NO_BILL')`, mchID).Scan(&d)
	if err != nil {
		return "", false, fmt.Errorf("last reconciled bill day: %w", err)
	}
	if d == nil {
		return "", false, nil
	}
	return *d, true, nil
}

const runColumns = `mch_id, bill_date::text, run_id, status, bill_rows, matched, error, started_at, finished_at`

func scanBillRun(row pgx.Row) (BillRun, error) {
	var r BillRun
	err := row.Scan(&r.MchID, &r.Date, &r.RunID, &r.Status, &r.BillRows, &r.Matched, &r.Error, &r.StartedAt, &r.FinishedAt)
	if err != nil {
		return BillRun{}, err
	}
	r.StartedAt = r.StartedAt.UTC()
	if r.FinishedAt != nil {
		t := r.FinishedAt.UTC()
		r.FinishedAt = &t
	}
	return r, nil
}

const differenceColumns = `d.id, d.kind, d.out_trade_no, d.out_refund_no, d.transaction_id, d.refund_id,
	d.wechat_amount_fen, d.our_amount_fen, d.our_status, d.bill_status, d.action, d.action_done_at`

func scanDifference(row pgx.Row) (BillDifference, error) {
	var d BillDifference
	err := row.Scan(&d.ID, &d.Kind, &d.OutTradeNo, &d.OutRefundNo, &d.TransactionID, &d.RefundID,
		&d.WeChatAmountFen, &d.OurAmountFen, &d.OurStatus, &d.BillStatus, &d.Action, &d.ActionDoneAt)
	if d.ActionDoneAt != nil {
		t := d.ActionDoneAt.UTC()
		d.ActionDoneAt = &t
	}
	return d, err
}
