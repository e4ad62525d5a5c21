package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payflow/payflow/payment"
)

// PendingOrder is a PENDING order as the safety net sees it: when it
// expires (nil: never).
type PendingOrder struct {
	OutTradeNo string
	ExpiresAt  *time.Time
}

// PendingOrdersAfter lists PENDING orders created before createdBefore
// whose out_trade_no sorts after after, in out_trade_no order, at most
// limit: keyset pagination, so a pass over many orders goes page by page
// and none is starved behind older ones.
func (s *Store) PendingOrdersAfter(ctx context.Context, createdBefore time.Time, after string, limit int) ([]PendingOrder, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT out_trade_no, expires_at FROM orders
		WHERE status = $1 AND created_at < $2 AND out_trade_no > $3
		ORDER BY out_trade_no LIMIT $4`, payment.StatusPending, createdBefore.UTC(), after, limit)
	if err != nil {
		return nil, fmt.Errorf("pending orders: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[PendingOrder])
	if err != nil {
		return nil, fmt.Errorf("pending orders: %w", err)
	}
	return out, nil
}

// NotificationCursor is a position in the list of unexamined notifications.
type NotificationCursor struct {
	ReceivedAt time.Time `json:"received_at"`
	ID         string    `json:"id"`
}

// UnexaminedNotifications lists notifications that were acknowledged (held
// by Temporal, or delivered from the inbox) and received before
// receivedBefore, but that no order workflow has marked examined, after
// the cursor, oldest first, at most limit. Events of other kinds need no
// workflow and are left out; inbox rows still pending are the relay's.
func (s *Store) UnexaminedNotifications(ctx context.Context, receivedBefore time.Time, after NotificationCursor, limit int) ([]payment.Notification, NotificationCursor, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, received_at, content FROM notifications
		WHERE examined_at IS NULL AND received_at < $1 AND kind <> 'other'
		AND (inbox_state IS NULL OR inbox_state = 'delivered')
		AND (received_at, id) > ($2, $3)
		ORDER BY received_at, id LIMIT $4`, receivedBefore.UTC(), after.ReceivedAt.UTC(), after.ID, limit)
	if err != nil {
		return nil, after, fmt.Errorf("unexamined notifications: %w", err)
	}
	defer rows.Close()
	var out []payment.Notification
	next := after
	for rows.Next() {
		var (
			content []byte
			n       payment.Notification
		)
		if err := rows.Scan(&next.ID, &next.ReceivedAt, &content); err != nil {
			return nil, after, fmt.Errorf("unexamined notifications: %w", err)
		}
		if err := json.Unmarshal(content, &n); err != nil {
			return nil, after, fmt.Errorf("unexamined notifications: decode %s: %w", next.ID, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("unexamined notifications: %w", err)
	}
	return out, next, nil
}

// NotificationBacklog counts the notifications received in [from, to)
// that were handed to an order's workflow (by the api, or delivered from
// the inbox) and that no workflow has examined yet: how far the workers
// are behind, which the api's backpressure follows. Like
// UnexaminedNotifications, it leaves out events of other kinds and inbox
// rows still pending (Temporal did not take them; the relay's work, not
// the workers').
func (s *Store) NotificationBacklog(ctx context.Context, from, to time.Time) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM notifications
		WHERE examined_at IS NULL AND received_at >= $1 AND received_at < $2 AND kind <> 'other'
		AND (inbox_state IS NULL OR inbox_state = 'delivered')`, from.UTC(), to.UTC()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("notification backlog: %w", err)
	}
	return n, nil
}
