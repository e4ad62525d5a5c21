package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payflow/payflow/payment"
)

// Inbox states of a notification row.
const (
	inboxPending   = "pending"
	inboxDelivered = "delivered"
)

// AuditNotification keeps a verified notification that Temporal holds. A
// repeat (same id) only counts the delivery.
func (s *Store) AuditNotification(ctx context.Context, n payment.Notification, outcome string) error {
	return s.insertNotification(ctx, n, outcome, "", false)
}

// AuditExamined keeps a verified notification that needs no workflow and
// is examined by being received: a late copy of the payment an order is
// PAID by, or an event of a kind that changes nothing.
func (s *Store) AuditExamined(ctx context.Context, n payment.Notification, outcome string) error {
	return s.insertNotification(ctx, n, outcome, "", true)
}

// EnqueueNotification commits a verified notification that Temporal could
// not take: its audit row, pending in the inbox, in one statement. A
// notification already kept (Temporal got an earlier copy, or it is already
// queued) is only counted.
func (s *Store) EnqueueNotification(ctx context.Context, n payment.Notification) error {
	return s.insertNotification(ctx, n, "inbox", inboxPending, false)
}

func (s *Store) insertNotification(ctx context.Context, n payment.Notification, outcome, inboxState string, examined bool) error {
	if n.ID == "" {
		return errors.New("keep notification: empty id")
	}
	content, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("keep notification %s: %w", n.ID, err)
	}
	_, err = s.pool.Exec(ctx, `
		INSERT INTO notifications (id, source, out_trade_no, transaction_id, amount_fen, content, outcome, received_at, inbox_state,
			kind, event_type, examined_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()), nullif($9, ''), $10, nullif($11, ''), CASE WHEN $12 THEN now() END)
		ON CONFLICT (id) DO UPDATE SET
			received_count = notifications.received_count + 1,
			last_received_at = EXCLUDED.received_at,
			examined_at = coalesce(notifications.examined_at, EXCLUDED.examined_at)`,
		n.ID, string(n.Source), n.OutTradeNo, n.TransactionID, n.AmountFen, content, outcome, nullTime(n.ReceivedAt), inboxState,
		string(n.Kind), n.EventType, examined)
	if err != nil {
		return fmt.Errorf("keep notification %s: %w", n.ID, err)
	}
	return nil
}

// MarkExamined records that the order's workflow examined these
// notifications. The workflow may get there before the api has written a
// notification's audit row (it writes it once Temporal holds the
// notification), so a missing row is inserted, with no delivery counted;
// the api's own write then only counts the delivery.
func (s *Store) MarkExamined(ctx context.Context, ns []payment.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, n := range ns {
		if n.ID == "" {
			continue
		}
		content, err := json.Marshal(n)
		if err != nil {
			return fmt.Errorf("mark examined %s: %w", n.ID, err)
		}
		b.Queue(`
			INSERT INTO notifications (id, source, out_trade_no, transaction_id, amount_fen, content, outcome, received_at,
				received_count, kind, event_type, examined_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'recorded', coalesce($7, now()), 0, $8, nullif($9, ''), now())
			ON CONFLICT (id) DO UPDATE SET examined_at = coalesce(notifications.examined_at, now())`,
			n.ID, string(n.Source), n.OutTradeNo, n.TransactionID, n.AmountFen, content, nullTime(n.ReceivedAt),
			string(n.Kind), n.EventType)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("mark examined: %w", err)
	}
	return nil
}

// inboxLease is how long a relay owns the rows it claimed. Past it another
// relay may deliver them again, which is harmless: the workflow recognises
// a notification id it has seen, and every status change is guarded.
const inboxLease = 2 * time.Minute

// ClaimInbox delivers up to limit pending notifications, oldest first. The
// rows are claimed with a lease in one short statement (FOR UPDATE SKIP
// LOCKED: other relays take other rows), then delivered outside any
// transaction, so no lock is held while Temporal is slow or down. The first
// failed delivery ends the batch and releases the rest.
func (s *Store) ClaimInbox(ctx context.Context, limit int, deliver func(payment.Notification) (string, error)) (int, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE notifications SET claimed_until = now() + $3::interval
		WHERE id IN (
			SELECT id FROM notifications
			WHERE inbox_state = $1 AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY received_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		RETURNING id, content, received_at`, inboxPending, limit, inboxLease.String())
	if err != nil {
		return 0, fmt.Errorf("claim inbox: %w", err)
	}
	type row struct {
		id       string
		content  []byte
		received time.Time
	}
	claimed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var v row
		return v, r.Scan(&v.id, &v.content, &v.received)
	})
	if err != nil {
		return 0, fmt.Errorf("claim inbox: %w", err)
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].received.Before(claimed[j].received) })

	delivered := 0
	for i, r := range claimed {
		var n payment.Notification
		if err := json.Unmarshal(r.content, &n); err != nil {
			return delivered, fmt.Errorf("claim inbox: decode %s: %w", r.id, err)
		}
		outcome, err := deliver(n)
		if err != nil {
			ids := make([]string, 0, len(claimed)-i)
			for _, rest := range claimed[i:] {
				ids = append(ids, rest.id)
			}
			// Released at once rather than at the lease's end: Temporal may
			// be back by the next pass.
			_, _ = s.pool.Exec(ctx, `UPDATE notifications SET claimed_until = NULL WHERE id = ANY($1)`, ids)
			return delivered, fmt.Errorf("deliver %s: %w", r.id, err)
		}
		_, err = s.pool.Exec(ctx, `
			UPDATE notifications SET inbox_state = $2, delivered_at = now(), outcome = $3, claimed_until = NULL
			WHERE id = $1`, r.id, inboxDelivered, "inbox, then "+outcome)
		if err != nil {
			return delivered, fmt.Errorf("claim inbox: mark %s: %w", r.id, err)
		}
		delivered++
	}
	return delivered, nil
}

// orderNotifications returns the audit trail of an order, oldest first;
// never nil, so the order's JSON has "notifications": [].
func orderNotifications(ctx context.Context, tx pgx.Tx, outTradeNo string) ([]payment.NotificationRecord, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, coalesce(source, ''), coalesce(transaction_id, ''), coalesce(amount_fen, 0), received_at,
			received_count, outcome, coalesce(inbox_state, ''), delivered_at, content
		FROM notifications WHERE out_trade_no = $1
		ORDER BY received_at, id`, outTradeNo)
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.NotificationRecord, error) {
		var r payment.NotificationRecord
		var content []byte
		err := row.Scan(&r.ID, &r.Version, &r.TransactionID, &r.AmountFen, &r.ReceivedAt,
			&r.ReceivedCount, &r.Outcome, &r.InboxState, &r.DeliveredAt, &content)
		r.Content = content
		r.ReceivedAt = r.ReceivedAt.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	if out == nil {
		out = []payment.NotificationRecord{}
	}
	return out, nil
}
