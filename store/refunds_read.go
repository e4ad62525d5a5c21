package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/payflow/payflow/payment"
)

// refundColumns are what scanRefund reads.
const refundColumns = `out_refund_no, out_trade_no, coalesce(refund_id, ''), amount_fen, status, reason, source,
	created_at, updated_at, success_time, detail`

func scanRefund(row pgx.Row) (payment.Refund, error) {
	var r payment.Refund
	err := row.Scan(&r.OutRefundNo, &r.OutTradeNo, &r.RefundID, &r.AmountFen, &r.Status, &r.Reason, &r.Source,
		&r.CreatedAt, &r.UpdatedAt, &r.SuccessTime, &r.Detail)
	if err != nil {
		return payment.Refund{}, err
	}
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	if r.SuccessTime != nil {
		t := r.SuccessTime.UTC()
		r.SuccessTime = &t
	}
	return r, nil
}

// orderRefunds returns the order's refunds, oldest first; never nil, so
// that the order's JSON has "refunds": [].
func orderRefunds(ctx context.Context, tx pgx.Tx, outTradeNo string) ([]payment.Refund, error) {
	rows, err := tx.Query(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE out_trade_no = $1 ORDER BY created_at, out_refund_no`, outTradeNo)
	if err != nil {
		return nil, fmt.Errorf("query refunds: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.Refund, error) { return scanRefund(row) })
	if err != nil {
		return nil, fmt.Errorf("query refunds: %w", err)
	}
	if out == nil {
		out = []payment.Refund{}
	}
	return out, nil
}

// Refundable is what is left to refund of the order's payment (what WeChat
// says was paid, less the refunds that are not CLOSED or FAILED) and how
// many refunds the order has; ErrNotFound for an unknown order.
func (s *Store) Refundable(ctx context.Context, mchID, outTradeNo string) (int64, int, error) {
	var (
		paid, counted int64
		n             int
	)
	err := s.pool.QueryRow(ctx, `
		SELECT coalesce(o.paid_fen, 0),
			coalesce((SELECT sum(amount_fen) FROM refunds r WHERE r.mch_id = $1 AND r.out_trade_no = o.out_trade_no
				AND r.status NOT IN ('CLOSED', 'FAILED')), 0),
			(SELECT count(*) FROM refunds r WHERE r.mch_id = $1 AND r.out_trade_no = o.out_trade_no)
		FROM orders o WHERE o.out_trade_no = $2`, mchID, outTradeNo).Scan(&paid, &counted, &n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, fmt.Errorf("refundable %s: %w", outTradeNo, ErrNotFound)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("refundable %s: %w", outTradeNo, err)
	}
	return paid - counted, n, nil
}
