package store

import (
	"context"
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
