package store

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/payflow/payflow/payment"
)

// WeChat's limits: refunds of one payment, and characters of a reason.
const (
	MaxRefundsPerOrder = 50
	MaxRefundReason    = 80
)

// Refund errors. Each is a reason to refuse a refund before anything is
// sent to WeChat; test for them with errors.Is.
var (
	// ErrRefundConflict: the out_refund_no is taken by a refund of another
	// amount or another order (or WeChat's refund_id by another refund).
	ErrRefundConflict = errors.New("out_refund_no already used with another amount or order")
	// ErrNotRefundable: the order is not PAID, nor REVIEW with a
	// transaction; a REFUNDED order has nothing left.
	ErrNotRefundable = errors.New("order cannot be refunded")
	// ErrTooManyRefunds: the order already has MaxRefundsPerOrder refunds.
	ErrTooManyRefunds = errors.New("order already has 50 refunds")
	// ErrExceedsPaid: the refunds not CLOSED or FAILED and this one would
	// add up to more than was paid.
	ErrExceedsPaid = errors.New("refund exceeds what is left to refund")
	// ErrInvalidRefund: the parameters cannot describe a refund (bad
	// out_refund_no, amount, source or status); nothing was written.
	ErrInvalidRefund = errors.New("invalid refund")
	// ErrRefundNotFound: no such refund (for this merchant and order). It
	// matches ErrNotFound too.
	ErrRefundNotFound error = refundNotFound{}
)

type refundNotFound struct{}

func (refundNotFound) Error() string        { return "refund not found" }
func (refundNotFound) Is(target error) bool { return target == ErrNotFound }

// AcceptRefundParams describe a refund to record.
type AcceptRefundParams struct {
	MchID       string
	OutTradeNo  string
	OutRefundNo string
	AmountFen   int64
	Reason      string
	Source      payment.RefundSource // api (asked for here) or merchant_portal (learnt from WeChat)
	// AcceptedBy names the call recording an api refund (the workflow run
	// and update accepting it). The same call finding the refund it
	// recorded itself, because it ran again, still gets Created true.
	AcceptedBy string
	// Portal refunds only: what WeChat already said about it. RefundID is
	// recorded; a Status other than PROCESSING is applied as MarkRefund
	// would, in the same transaction (SuccessTime for SUCCESS, Detail for
	// FAILED or ABNORMAL).
	RefundID    string
	Status      payment.RefundStatus
	SuccessTime time.Time
	Detail      string
}

// AcceptRefundResult says what AcceptRefund did.
type AcceptRefundResult struct {
	Refund  payment.Refund `json:"refund"`
	Created bool           `json:"created"` // false: the refund existed (same order and amount)
	// LimitsExceeded: a portal refund was recorded although the order
	// was not refundable, had 50 refunds or not enough left; the workflow
	// should send the order to REVIEW.
	LimitsExceeded bool `json:"limits_exceeded,omitempty"`
	// StatusChanged: a portal refund's Status was applied now (a new
	// outcome, with its log row). OrderFrom and OrderTo are then the
	// order's status before and after (see MarkRefundResult); empty when
	// no status was given.
	StatusChanged bool           `json:"status_changed,omitempty"`
	OrderFrom     payment.Status `json:"order_from,omitempty"`
	OrderTo       payment.Status `json:"order_to,omitempty"`
}

// lockedOrder is what the refund writes need of an order, read under its
// row lock.
type lockedOrder struct {
	status      payment.Status
	txid        string
	paidFen     *int64
	refundedFen int64
}

func lockOrderForRefund(ctx context.Context, tx pgx.Tx, outTradeNo string) (lockedOrder, error) {
	var o lockedOrder
	err := tx.QueryRow(ctx, `
		SELECT status, coalesce(transaction_id, ''), paid_fen, refunded_fen
		FROM orders WHERE out_trade_no = $1
		FOR UPDATE`, outTradeNo).Scan(&o.status, &o.txid, &o.paidFen, &o.refundedFen)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, ErrNotFound
	}
	if err != nil {
		return o, fmt.Errorf("lock order: %w", err)
	}
	return o, nil
}

// refundable reports whether an api refund may be asked for the order:
// PAID, or REVIEW with a payment (a paid-after-close order is settled by
// refunding it).
func (o lockedOrder) refundable() bool {
	return o.paidFen != nil && (o.status == payment.StatusPaid || o.status == payment.StatusReview)
}

func (o lockedOrder) paid() int64 {
	if o.paidFen == nil {
		return 0
	}
	return *o.paidFen
}

// AcceptRefund records a refund of an order in one transaction under the
// order's row lock, so that concurrent refunds of one order are decided one
// after the other.
//
// A refund already recorded under (MchID, OutRefundNo) for the same order
// and amount is returned as it is now (Created false; a portal refund's
// Status is applied to it as MarkRefund would); with another amount or
// order the answer is ErrRefundConflict. Otherwise, for Source api: the
// order must be PAID, or REVIEW with a payment (else ErrNotRefundable), have
// fewer than MaxRefundsPerOrder refunds (else ErrTooManyRefunds), and its
// refunds that are not CLOSED or FAILED plus this one must stay within its
// paid amount (else ErrExceedsPaid); the refund is recorded PROCESSING.
// For Source merchant_portal (a refund WeChat made that this service did
// not ask for) the refund is recorded whatever the order's state, with
// LimitsExceeded set where an api refund would have been refused. An
// unknown order is ErrNotFound.
func (s *Store) AcceptRefund(ctx context.Context, p AcceptRefundParams) (AcceptRefundResult, error) {
	fail := func(err error) (AcceptRefundResult, error) {
		return AcceptRefundResult{}, fmt.Errorf("accept refund %s of %s: %w", p.OutRefundNo, p.OutTradeNo, err)
	}
	if err := p.check(); err != nil {
		return fail(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)

	order, err := lockOrderForRefund(ctx, tx, p.OutTradeNo)
	if err != nil {
		return fail(err)
	}
	existing, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE mch_id = $1 AND out_refund_no = $2`, p.MchID, p.OutRefundNo))
	switch {
	case err == nil:
		if existing.OutTradeNo != p.OutTradeNo || existing.AmountFen != p.AmountFen {
			return fail(ErrRefundConflict)
		}
		if !p.applies() {
			// Recorded by this very call before it ran again: still created.
			var by string
			if err := tx.QueryRow(ctx, `SELECT accepted_by FROM refunds WHERE mch_id = $1 AND out_refund_no = $2`,
				p.MchID, p.OutRefundNo).Scan(&by); err != nil {
				return fail(err)
			}
			return AcceptRefundResult{Refund: existing, Created: p.AcceptedBy != "" && by == p.AcceptedBy}, nil
		}
		// A portal refund told of again, with news: applied as MarkRefund
		// would (a final status stays), under the order's lock.
		r, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
			WHERE mch_id = $1 AND out_refund_no = $2 FOR UPDATE`, p.MchID, p.OutRefundNo))
		if err != nil {
			return fail(err)
		}
		m, err := markRefund(ctx, tx, order, r, p.mark())
		if err != nil {
			return fail(err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fail(err)
		}
		return AcceptRefundResult{Refund: m.Refund, StatusChanged: m.Changed, OrderFrom: m.OrderFrom, OrderTo: m.OrderTo}, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fail(err)
	}

	var count, counted int64
	err = tx.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(amount_fen) FILTER (WHERE status NOT IN ('CLOSED', 'FAILED')), 0)
		FROM refunds WHERE out_trade_no = $1`, p.OutTradeNo).Scan(&count, &counted)
	if err != nil {
		return fail(err)
	}
	var limit error
	switch {
	case !order.refundable():
		limit = ErrNotRefundable
	case count >= MaxRefundsPerOrder:
		limit = ErrTooManyRefunds
	case counted+p.AmountFen > order.paid():
		limit = ErrExceedsPaid
	}
	res := AcceptRefundResult{Created: true}
	if limit != nil {
		if p.Source == payment.RefundSourceAPI {
			return fail(limit)
		}
		res.LimitsExceeded = true
	}

	var refundID *string
	if p.RefundID != "" {
		refundID = &p.RefundID
	}
	// ON CONFLICT: a concurrent refund of another order under the same
	// number (not serialised by this order's lock) waits for ours and
	// then inserts nothing.
	r, err := scanRefund(tx.QueryRow(ctx, `
		INSERT INTO refunds (mch_id, out_refund_no, out_trade_no, amount_fen, status, reason, source, refund_id, accepted_at, accepted_by)
		VALUES ($1, $2, $3, $4, 'PROCESSING', $5, $6, $7, CASE WHEN $6 = 'merchant_portal' THEN now() END, $8)
		ON CONFLICT (mch_id, out_refund_no) DO NOTHING
		RETURNING `+refundColumns,
		p.MchID, p.OutRefundNo, p.OutTradeNo, p.AmountFen, p.Reason, string(p.Source), refundID, p.AcceptedBy))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fail(ErrRefundConflict) // the other order's refund won the number
	case isUniqueViolation(err):
		return fail(ErrRefundConflict) // refund_id belongs to another refund
	case err != nil:
		return fail(err)
	}
	res.Refund = r

	if p.applies() {
		m, err := markRefund(ctx, tx, order, r, p.mark())
		if err != nil {
			return fail(err)
		}
		res.Refund, res.StatusChanged, res.OrderFrom, res.OrderTo = m.Refund, m.Changed, m.OrderFrom, m.OrderTo
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return res, nil
}

// applies reports whether a portal refund comes with a status to apply.
func (p AcceptRefundParams) applies() bool {
	return p.Source == payment.RefundSourcePortal && p.Status != "" && p.Status != payment.RefundProcessing
}

func (p AcceptRefundParams) mark() MarkRefundParams {
	return MarkRefundParams{MchID: p.MchID, OutRefundNo: p.OutRefundNo, Status: p.Status, RefundID: p.RefundID,
		SuccessTime: p.SuccessTime, Detail: p.Detail}
}

func (p AcceptRefundParams) check() error {
	switch {
	case p.MchID == "":
		return fmt.Errorf("%w: no mch_id", ErrInvalidRefund)
	case !payment.ValidOutRefundNo(p.OutRefundNo):
		return fmt.Errorf("%w: out_refund_no must be 1 to 64 of 0-9 A-Z a-z _ - | * @", ErrInvalidRefund)
	case p.AmountFen <= 0:
		return fmt.Errorf("%w: amount %d fen is not positive", ErrInvalidRefund, p.AmountFen)
	case !utf8.ValidString(p.Reason) || utf8.RuneCountInString(p.Reason) > MaxRefundReason:
		return fmt.Errorf("%w: reason must be UTF-8 of at most %d characters", ErrInvalidRefund, MaxRefundReason)
	case p.Source != payment.RefundSourceAPI && p.Source != payment.RefundSourcePortal:
		return fmt.Errorf("%w: source %q", ErrInvalidRefund, p.Source)
	case p.Source == payment.RefundSourceAPI && (p.RefundID != "" || (p.Status != "" && p.Status != payment.RefundProcessing)):
		return fmt.Errorf("%w: an api refund starts PROCESSING, without a refund_id", ErrInvalidRefund)
	case p.Status != "" && !knownRefundStatus(p.Status):
		return fmt.Errorf("%w: status %q", ErrInvalidRefund, p.Status)
	}
	return nil
}

func knownRefundStatus(s payment.RefundStatus) bool {
	switch s {
	case payment.RefundProcessing, payment.RefundSuccess, payment.RefundClosed, payment.RefundAbnormal, payment.RefundFailed:
		return true
	}
	return false
}

// RefundAccepted records that WeChat accepted the refund: its refund_id
// (when given) and when. It is idempotent: a refund_id already recorded is
// kept (another one is ErrRefundConflict, as is a refund_id another refund
// holds), and so is the first accepted_at. An unknown refund is
// ErrRefundNotFound.
func (s *Store) RefundAccepted(ctx context.Context, mchID, outRefundNo, refundID string, at time.Time) error {
	var id *string
	if refundID != "" {
		id = &refundID
	}
	var kept string
	err := s.pool.QueryRow(ctx, `
		UPDATE refunds
		SET refund_id = coalesce(refund_id, $3),
		    accepted_at = coalesce(accepted_at, $4, now()),
		    updated_at = CASE WHEN refund_id IS NULL AND $3::text IS NOT NULL OR accepted_at IS NULL THEN now() ELSE updated_at END
		WHERE mch_id = $1 AND out_refund_no = $2
		RETURNING coalesce(refund_id, '')`, mchID, outRefundNo, id, nullTime(at)).Scan(&kept)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("refund accepted %s: %w", outRefundNo, ErrRefundNotFound)
	case isUniqueViolation(err):
		return fmt.Errorf("refund accepted %s: refund_id %s: %w", outRefundNo, refundID, ErrRefundConflict)
	case err != nil:
		return fmt.Errorf("refund accepted %s: %w", outRefundNo, err)
	case refundID != "" && kept != refundID:
		return fmt.Errorf("refund accepted %s: refund_id %s, already recorded as %s: %w", outRefundNo, refundID, kept, ErrRefundConflict)
	}
	return nil
}

// MarkRefundParams describe what WeChat said about a refund.
type MarkRefundParams struct {
	MchID       string
	OutRefundNo string
	Status      payment.RefundStatus // SUCCESS, CLOSED, ABNORMAL or FAILED; PROCESSING changes nothing
	RefundID    string               // WeChat's, recorded if not yet known
	SuccessTime time.Time            // SUCCESS: WeChat's success_time (the database's now() when zero)
	Detail      string               // WeChat's reason for FAILED, or what keeps the refund ABNORMAL; replaces the last one
}

// MarkRefundResult says what MarkRefund did.
type MarkRefundResult struct {
	Changed bool           `json:"changed"` // false: the refund already had this or a final status
	Refund  payment.Refund `json:"refund"`  // as it is now
	// The order's status before and after; they differ when the order
	// became REFUNDED (or REVIEW, see Exceeded).
	OrderFrom payment.Status `json:"order_from"`
	OrderTo   payment.Status `json:"order_to"`
	// Exceeded: a SUCCESS that would take refunded_fen beyond what was
	// paid (a portal refund of an order we did not see paid, say). The
	// refund is SUCCESS, refunded_fen is left as it was and the order went
	// to REVIEW.
	Exceeded bool `json:"exceeded,omitempty"`
}

// MarkRefund moves a refund that is not final (PROCESSING or ABNORMAL) to
// SUCCESS, CLOSED, ABNORMAL or FAILED. A final status never changes, and a
// repeat changes nothing (Changed false); PROCESSING changes nothing but a
// missing refund_id. In the same transaction, under the order's row lock,
// it writes one order log row per refund outcome (final or ABNORMAL)
// naming out_refund_no and amount, idempotency key "refund:{no}:{status}",
// with the order's status before and after; on SUCCESS it adds the amount
// to the order's refunded_fen, and the order becomes REFUNDED (from PAID or
// REVIEW) once refunded_fen equals what was paid. An unknown refund is
// ErrRefundNotFound.
func (s *Store) MarkRefund(ctx context.Context, p MarkRefundParams) (MarkRefundResult, error) {
	fail := func(err error) (MarkRefundResult, error) {
		return MarkRefundResult{}, fmt.Errorf("mark refund %s %s: %w", p.OutRefundNo, p.Status, err)
	}
	if !knownRefundStatus(p.Status) {
		return fail(fmt.Errorf("%w: status %q", ErrInvalidRefund, p.Status))
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback(ctx)

	var outTradeNo string
	err = tx.QueryRow(ctx, `SELECT out_trade_no FROM refunds WHERE mch_id = $1 AND out_refund_no = $2`,
		p.MchID, p.OutRefundNo).Scan(&outTradeNo)
	if errors.Is(err, pgx.ErrNoRows) {
		return fail(ErrRefundNotFound)
	}
	if err != nil {
		return fail(err)
	}
	// The order first, then the refund: the order AcceptRefund locks in.
	order, err := lockOrderForRefund(ctx, tx, outTradeNo)
	if err != nil {
		return fail(err)
	}
	r, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE mch_id = $1 AND out_refund_no = $2 FOR UPDATE`, p.MchID, p.OutRefundNo))
	if err != nil {
		return fail(err)
	}
	res, err := markRefund(ctx, tx, order, r, p)
	if err != nil {
		return fail(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return res, nil
}

// markRefund applies p to the locked refund r of the locked order.
func markRefund(ctx context.Context, tx pgx.Tx, order lockedOrder, r payment.Refund, p MarkRefundParams) (MarkRefundResult, error) {
	res := MarkRefundResult{Refund: r, OrderFrom: order.status, OrderTo: order.status}
	var refundID *string
	if p.RefundID != "" {
		refundID = &p.RefundID
	}
	if r.Status.Final() || r.Status == p.Status || p.Status == payment.RefundProcessing {
		if r.RefundID == "" && refundID != nil {
			updated, err := scanRefund(tx.QueryRow(ctx, `
				UPDATE refunds SET refund_id = $3, accepted_at = coalesce(accepted_at, now()), updated_at = now()
				WHERE mch_id = $1 AND out_refund_no = $2
				RETURNING `+refundColumns, p.MchID, p.OutRefundNo, refundID))
			if isUniqueViolation(err) {
				return res, fmt.Errorf("refund_id %s: %w", p.RefundID, ErrRefundConflict)
			}
			if err != nil {
				return res, err
			}
			res.Refund = updated
		}
		return res, nil
	}

	// A real transition of a PROCESSING or ABNORMAL refund.
	to := order.status
	refunded := order.refundedFen
	if p.Status == payment.RefundSuccess {
		if refunded+r.AmountFen > order.paid() {
			res.Exceeded = true
			to = payment.StatusReview
		} else {
			refunded += r.AmountFen
			if refunded == order.paid() && order.txid != "" &&
				(order.status == payment.StatusPaid || order.status == payment.StatusReview) {
				to = payment.StatusRefunded
			}
		}
	}
	updated, err := scanRefund(tx.QueryRow(ctx, `
		UPDATE refunds
		SET status = $3, refund_id = coalesce(refund_id, $4),
		    success_time = CASE WHEN $3 = 'SUCCESS' THEN coalesce($5, now()) END,
		    detail = $6,
		    accepted_at = coalesce(accepted_at, now()), updated_at = now()
		WHERE mch_id = $1 AND out_refund_no = $2
		RETURNING `+refundColumns,
		p.MchID, p.OutRefundNo, string(p.Status), refundID, nullTime(p.SuccessTime), p.Detail))
	if isUniqueViolation(err) {
		return res, fmt.Errorf("refund_id %s: %w", p.RefundID, ErrRefundConflict)
	}
	if err != nil {
		return res, fmt.Errorf("update refund: %w", err)
	}
	remarks := refundRemarks(updated, order, res.Exceeded)
	inserted, err := insertLog(ctx, tx, r.OutTradeNo, order.status, to, remarks, payment.KeyRefund(r.OutRefundNo, p.Status))
	if err != nil {
		return res, err
	}
	if !inserted {
		// The refund was not in this status, yet its log row exists: the
		// data was edited by hand. Refuse rather than count it twice.
		return res, fmt.Errorf("refund %s is %s but its %s log row exists", r.OutRefundNo, r.Status, p.Status)
	}
	if to != order.status || refunded != order.refundedFen {
		_, err = tx.Exec(ctx, `UPDATE orders SET status = $2, refunded_fen = $3, updated_at = now() WHERE out_trade_no = $1`,
			r.OutTradeNo, string(to), refunded)
		if err != nil {
			return res, fmt.Errorf("update order: %w", err)
		}
	}
	res.Changed, res.Refund, res.OrderTo = true, updated, to
	return res, nil
}

// refundRemarks is the log row of a refund outcome, e.g.
// "refund R123 ¥12.34 SUCCESS (refund_id 50000…)".
func refundRemarks(r payment.Refund, order lockedOrder, exceeded bool) string {
	s := fmt.Sprintf("refund %s %s %s", r.OutRefundNo, yuan(r.AmountFen), r.Status)
	if r.RefundID != "" {
		s += " (refund_id " + r.RefundID + ")"
	}
	if r.Source == payment.RefundSourcePortal {
		s += " from the merchant portal"
	}
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	if exceeded {
		s += fmt.Sprintf("; exceeds what was paid (paid %s, refunded %s): review", yuan(order.paid()), yuan(order.refundedFen))
	}
	return s
}

// yuan formats fen as ¥12.34.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s¥%d.%02d", sign, fen/100, fen%100)
}

// GetRefund returns the refund outRefundNo of the order outTradeNo, or
// ErrRefundNotFound (which matches ErrNotFound) when there is none for this
// merchant and order.
func (s *Store) GetRefund(ctx context.Context, mchID, outTradeNo, outRefundNo string) (payment.Refund, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE mch_id = $1 AND out_refund_no = $2 AND out_trade_no = $3`, mchID, outRefundNo, outTradeNo))
	if errors.Is(err, pgx.ErrNoRows) {
		return payment.Refund{}, fmt.Errorf("get refund %s of %s: %w", outRefundNo, outTradeNo, ErrRefundNotFound)
	}
	if err != nil {
		return payment.Refund{}, fmt.Errorf("get refund %s of %s: %w", outRefundNo, outTradeNo, err)
	}
	return r, nil
}

// OpenRefunds returns the order's refunds that are not final (PROCESSING
// and ABNORMAL), oldest first; never nil.
func (s *Store) OpenRefunds(ctx context.Context, mchID, outTradeNo string) ([]payment.Refund, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE mch_id = $1 AND out_trade_no = $2 AND status IN ('PROCESSING', 'ABNORMAL')
		ORDER BY created_at, out_refund_no`, mchID, outTradeNo)
	if err != nil {
		return nil, fmt.Errorf("open refunds of %s: %w", outTradeNo, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.Refund, error) { return scanRefund(row) })
	if err != nil {
		return nil, fmt.Errorf("open refunds of %s: %w", outTradeNo, err)
	}
	if out == nil {
		out = []payment.Refund{}
	}
	return out, nil
}

// OpenRefundOrder is an order with a refund that is not final.
type OpenRefundOrder struct {
	OutTradeNo string
	// Untaken: one of its open refunds has no refund_id, WeChat has not
	// taken it, and it was recorded before the cut-off. Only such a
	// refund can be unknown to a running run (the update that accepted it
	// was lost with a crashed Temporal server before any run asked WeChat).
	Untaken bool
}

// OrdersWithOpenRefunds returns up to limit orders after afterOutTradeNo
// (keyset pagination; "" starts at the beginning), in order, with a refund
// of this merchant that is not final: the safety net makes sure a workflow
// follows each. untakenBefore is the cut-off of OpenRefundOrder.Untaken.
func (s *Store) OrdersWithOpenRefunds(ctx context.Context, mchID, afterOutTradeNo string, limit int, untakenBefore time.Time) ([]OpenRefundOrder, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("orders with open refunds: limit %d is not positive", limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT out_trade_no, bool_or(refund_id IS NULL AND created_at < $4) FROM refunds
		WHERE mch_id = $1 AND status IN ('PROCESSING', 'ABNORMAL') AND out_trade_no > $2
		GROUP BY out_trade_no ORDER BY out_trade_no LIMIT $3`, mchID, afterOutTradeNo, limit, untakenBefore)
	if err != nil {
		return nil, fmt.Errorf("orders with open refunds: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OpenRefundOrder])
	if err != nil {
		return nil, fmt.Errorf("orders with open refunds: %w", err)
	}
	return out, nil
}

// OpenRefundStats describes the refunds that are not final.
type OpenRefundStats struct {
	Processing int64
	Abnormal   int64
	// OldestProcessing is when the oldest PROCESSING refund was accepted
	// (or recorded, if WeChat has not accepted it yet); zero when none.
	OldestProcessing time.Time
}

// OpenRefundStats counts the merchant's refunds that are not final, for the
// metrics that alert on refunds stuck PROCESSING or ABNORMAL.
func (s *Store) OpenRefundStats(ctx context.Context, mchID string) (OpenRefundStats, error) {
	var (
		st     OpenRefundStats
		oldest *time.Time
	)
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE status = 'PROCESSING'), count(*) FILTER (WHERE status = 'ABNORMAL'),
		       min(coalesce(accepted_at, created_at)) FILTER (WHERE status = 'PROCESSING')
		FROM refunds WHERE mch_id = $1 AND status IN ('PROCESSING', 'ABNORMAL')`, mchID).
		Scan(&st.Processing, &st.Abnormal, &oldest)
	if err != nil {
		return OpenRefundStats{}, fmt.Errorf("open refund stats: %w", err)
	}
	if oldest != nil {
		st.OldestProcessing = oldest.UTC()
	}
	return st, nil
}
