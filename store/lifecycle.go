package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/payflow/payflow/payment"
)

// ErrPrepayConflict: the order was already prepaid with other parameters.
var ErrPrepayConflict = errors.New("order already prepaid with different parameters")

// ClosedOutcome says what MarkClosed found (payment.ClosedOutcome).
type ClosedOutcome = payment.ClosedOutcome

// What MarkClosed found, as package payment names it.
const (
	OutcomeClosed        = payment.ClosedNow
	OutcomeAlreadyClosed = payment.ClosedAlready
	OutcomeClosedPaid    = payment.ClosedPaid
	OutcomeClosedReview  = payment.ClosedReview
)

// MarkClosed moves a PENDING order to CLOSED with one log row (remarks
// reason, idempotency key idemKey). A PAID or REVIEW order is left alone and
// its state reported, so the caller learns that the close lost a race.
func (s *Store) MarkClosed(ctx context.Context, outTradeNo, reason string, idemKey payment.Key) (ClosedOutcome, error) {
	if idemKey == "" {
		return "", fmt.Errorf("mark closed %s: empty idempotency key", outTradeNo)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return "", fmt.Errorf("mark closed %s: %w", outTradeNo, err)
	}
	defer tx.Rollback(ctx)

	status, _, err := lockOrder(ctx, tx, outTradeNo)
	if err != nil {
		return "", fmt.Errorf("mark closed %s: %w", outTradeNo, err)
	}
	switch status {
	case payment.StatusPaid:
		return OutcomeClosedPaid, nil
	case payment.StatusReview:
		return OutcomeClosedReview, nil
	case payment.StatusClosed:
		return OutcomeAlreadyClosed, nil
	}
	if _, err := changeStatus(ctx, tx, outTradeNo, status, payment.StatusClosed, reason, idemKey); err != nil {
		return "", fmt.Errorf("mark closed %s: %w", outTradeNo, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return "", fmt.Errorf("mark closed %s: %w", outTradeNo, err)
	}
	return OutcomeClosed, nil
}

// GetPrepay returns the stored prepay of an order and the hash of the
// parameters it was made with; found is false if there is none.
func (s *Store) GetPrepay(ctx context.Context, outTradeNo string) (p payment.Prepay, paramsHash string, found bool, err error) {
	var raw []byte
	err = s.pool.QueryRow(ctx, `SELECT params_hash, result FROM prepays WHERE out_trade_no = $1`, outTradeNo).Scan(&paramsHash, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return payment.Prepay{}, "", false, nil
	}
	if err != nil {
		return payment.Prepay{}, "", false, fmt.Errorf("get prepay %s: %w", outTradeNo, err)
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return payment.Prepay{}, "", false, fmt.Errorf("get prepay %s: decode: %w", outTradeNo, err)
	}
	return p, paramsHash, true, nil
}

// SavePrepay stores an order's prepay once. If one is already stored, that
// one is returned (a retried activity keeps the first answer), or
// ErrPrepayConflict if it was made with other parameters.
func (s *Store) SavePrepay(ctx context.Context, outTradeNo, paramsHash string, p payment.Prepay) (payment.Prepay, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return payment.Prepay{}, fmt.Errorf("save prepay %s: %w", outTradeNo, err)
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO prepays (out_trade_no, params_hash, result) VALUES ($1, $2, $3)
		ON CONFLICT (out_trade_no) DO NOTHING`, outTradeNo, paramsHash, raw)
	if isForeignKeyViolation(err) {
		return payment.Prepay{}, fmt.Errorf("save prepay %s: %w", outTradeNo, ErrNotFound)
	}
	if err != nil {
		return payment.Prepay{}, fmt.Errorf("save prepay %s: %w", outTradeNo, err)
	}
	stored, hash, _, err := s.GetPrepay(ctx, outTradeNo)
	if err != nil {
		return payment.Prepay{}, err
	}
	if hash != paramsHash {
		return payment.Prepay{}, fmt.Errorf("save prepay %s: %w", outTradeNo, ErrPrepayConflict)
	}
	return stored, nil
}

// ErrNotInReview: ResolveReview found the order in another status.
var ErrNotInReview = errors.New("order is not in REVIEW")

// ErrNoTransaction: a REVIEW order without a transaction cannot be
// accepted as paid (no payment is known to have happened).
var ErrNoTransaction = errors.New("order has no transaction to accept as paid")

// ResolveReview settles an order in REVIEW as an operator decided: to PAID
// (the payment stands; the order must have a transaction) or to CLOSED, with
// one log row saying who, how and why (remarks), once per key. It returns
// whether the order changed and its status afterwards.
func (s *Store) ResolveReview(ctx context.Context, outTradeNo string, to payment.Status, remarks string, key payment.Key) (bool, payment.Status, error) {
	if to != payment.StatusPaid && to != payment.StatusClosed {
		return false, "", fmt.Errorf("resolve %s: cannot resolve to %s", outTradeNo, to)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, "", fmt.Errorf("resolve %s: %w", outTradeNo, err)
	}
	defer tx.Rollback(ctx)
	status, txid, err := lockOrder(ctx, tx, outTradeNo)
	if err != nil {
		return false, "", fmt.Errorf("resolve %s: %w", outTradeNo, err)
	}
	if status != payment.StatusReview {
		if status == to {
			// A repeated resolution that already happened.
			var done bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM order_logs WHERE out_trade_no = $1 AND idempotency_key = $2)`,
				outTradeNo, string(key)).Scan(&done); err != nil {
				return false, "", fmt.Errorf("resolve %s: %w", outTradeNo, err)
			}
			if done {
				return false, status, nil
			}
		}
		return false, status, fmt.Errorf("resolve %s: %w (it is %s)", outTradeNo, ErrNotInReview, status)
	}
	if to == payment.StatusPaid {
		if txid == "" {
			return false, status, fmt.Errorf("resolve %s: %w", outTradeNo, ErrNoTransaction)
		}
		if _, err := tx.Exec(ctx, `UPDATE orders SET paid_fen = coalesce(paid_fen, amount_fen), paid_at = coalesce(paid_at, now())
			WHERE out_trade_no = $1`, outTradeNo); err != nil {
			return false, "", fmt.Errorf("resolve %s: %w", outTradeNo, err)
		}
	}
	changed, err := changeStatus(ctx, tx, outTradeNo, status, to, remarks, key)
	if err != nil {
		return false, "", fmt.Errorf("resolve %s: %w", outTradeNo, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, "", fmt.Errorf("resolve %s: %w", outTradeNo, err)
	}
	if !changed {
		return false, status, nil
	}
	return true, to, nil
}
