package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/payflow/payflow/payment"
)

// Inbox states of a notification row.
const (
	inboxPending   = "pending"
	inboxDelivered = "delivered"
	inboxParked    = "parked"
)

// KeepHandingOver writes the audit row of a verified notification while it
// is being handed to its order's workflow, before the hand-over's outcome
// is known, as recorded (the usual outcome), so that the two run side by
// side. created says whether this call made the row (no copy of the
// notification was kept before); SettleHandOver then corrects the row if
// the hand-over ended otherwise. A repeat (same id) only counts the
// delivery.
func (s *Store) KeepHandingOver(ctx context.Context, n payment.Notification) (created bool, err error) {
	return s.insertNotification(ctx, n, payment.NotifyRecorded, "", false)
}

// SettleHandOver corrects the row KeepHandingOver wrote when the hand-over
// ended otherwise than recorded, without counting the delivery again:
//   - already_paid: the notification is examined now;
//   - recorded_again: the row says so, if this delivery made it;
//   - inbox (Temporal did not take it): if this delivery made the row, it
//     is now pending in the inbox. A row kept before (an earlier copy
//     that Temporal holds, or that is queued) is left as it is, as
//     EnqueueNotification would.
func (s *Store) SettleHandOver(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome, created bool) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE notifications SET
			outcome = CASE WHEN $3 THEN $2 ELSE outcome END,
			inbox_state = CASE WHEN $3 AND $2 = $4 THEN $5 ELSE inbox_state END,
			examined_at = CASE WHEN $2 = $6 THEN coalesce(examined_at, now()) ELSE examined_at END
		WHERE id = $1`,
		n.ID, string(outcome), created, string(payment.NotifyInbox), inboxPending, string(payment.NotifyAlreadyPaid))
	if err != nil {
		return fmt.Errorf("settle notification %s: %w", n.ID, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("settle notification %s: %w", n.ID, ErrNotFound)
	}
	return nil
}

// AuditExamined keeps a verified notification that needs no workflow and
// is examined by being received: a late copy of the payment an order is
// PAID by, or an event of a kind that changes nothing.
func (s *Store) AuditExamined(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome) error {
	_, err := s.insertNotification(ctx, n, outcome, "", true)
	return err
}

// EnqueueNotification commits a verified notification that Temporal could
// not take: its audit row, pending in the inbox, in one statement. A
// notification already kept (Temporal got an earlier copy, or it is already
// queued) is only counted.
func (s *Store) EnqueueNotification(ctx context.Context, n payment.Notification) error {
	_, err := s.insertNotification(ctx, n, payment.NotifyInbox, inboxPending, false)
	return err
}

// insertNotification keeps a notification, or counts a repeat of one kept
// before; created says which.
func (s *Store) insertNotification(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome, inboxState string, examined bool) (created bool, err error) {
	if n.ID == "" {
		return false, errors.New("keep notification: empty id")
	}
	content, err := json.Marshal(n)
	if err != nil {
		return false, fmt.Errorf("keep notification %s: %w", n.ID, err)
	}
	// xmax is 0 on a row this statement inserted, and set on one it
	// updated.
	err = s.pool.QueryRow(ctx, `
		INSERT INTO notifications (id, source, out_trade_no, transaction_id, amount_fen, content, outcome, received_at, inbox_state,
			kind, event_type, examined_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8, now()), nullif($9, ''), $10, nullif($11, ''), CASE WHEN $12 THEN now() END)
		ON CONFLICT (id) DO UPDATE SET
			received_count = notifications.received_count + 1,
			last_received_at = EXCLUDED.received_at,
			examined_at = coalesce(notifications.examined_at, EXCLUDED.examined_at)
		RETURNING xmax = 0`,
		n.ID, string(n.Source), n.OutTradeNo, n.TransactionID, n.AmountFen, content, string(outcome), nullTime(n.ReceivedAt), inboxState,
		string(n.Kind), n.EventType, examined).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("keep notification %s: %w", n.ID, err)
	}
	return created, nil
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

// InboxParkAfter is how many failed deliveries park an inbox row: it stops
// being tried, is counted and alerted on, and waits for an operator to
// re-drive it (RedriveInbox).
const InboxParkAfter = 10

// inboxBackoff is the wait before a row's next attempt after n failures:
// 5 s doubling, at most 10 minutes.
func inboxBackoff(n int) time.Duration {
	d := 5 * time.Second
	for i := 1; i < n && d < 10*time.Minute; i++ {
		d *= 2
	}
	return min(d, 10*time.Minute)
}

// Delivery is what a relay made of one inbox row.
type Delivery struct {
	Outcome payment.NotificationOutcome // how the order's workflow took it
	// Examined: the notification needs no workflow (a late copy of the
	// payment the order is PAID by) and counts as examined now.
	Examined bool
	// Err: the row could not be delivered. Paused says the fault is not the
	// row's (Temporal is unreachable): the batch stops and no attempt is
	// counted; otherwise the row's attempt is counted and the batch goes on.
	Err    error
	Paused bool
}

// InboxResult is what a ClaimInbox batch did.
type InboxResult struct {
	Claimed, Delivered, Failed, Parked int
	Paused                             bool // Temporal was unreachable: the rest of the batch was released

	pauseErr error
}

// ClaimInbox delivers up to limit pending notifications that are due,
// oldest first. The rows are claimed with a lease in one short statement
// (FOR UPDATE SKIP LOCKED: other relays take other rows), then delivered
// outside any transaction, so no lock is held while Temporal is slow or
// down. A row that fails is tried again later with backoff and never holds
// up the rows behind it; after InboxParkAfter failures it is parked.
func (s *Store) ClaimInbox(ctx context.Context, limit int, deliver func(payment.Notification) Delivery) (InboxResult, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE notifications SET claimed_until = now() + $3::interval
		WHERE id IN (
			SELECT id FROM notifications
			WHERE inbox_state = $1 AND coalesce(inbox_next_attempt_at, received_at) <= now()
			AND (claimed_until IS NULL OR claimed_until < now())
			ORDER BY coalesce(inbox_next_attempt_at, received_at)
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		RETURNING id, content, received_at, inbox_attempts`, inboxPending, limit, inboxLease.String())
	if err != nil {
		return InboxResult{}, fmt.Errorf("claim inbox: %w", err)
	}
	type row struct {
		id       string
		content  []byte
		received time.Time
		attempts int
	}
	claimed, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var v row
		return v, r.Scan(&v.id, &v.content, &v.received, &v.attempts)
	})
	if err != nil {
		return InboxResult{}, fmt.Errorf("claim inbox: %w", err)
	}
	sort.Slice(claimed, func(i, j int) bool { return claimed[i].received.Before(claimed[j].received) })
	res := InboxResult{Claimed: len(claimed)}

	// Deliveries run inboxParallel at a time, oldest first: a backlog
	// (after an outage, or an overload that pushed hand-overs past their
	// deadline) drains at Temporal's pace, not at one round trip at a time.
	// Once one says Temporal is unreachable no more are started, and the
	// rows not delivered are released.
	var (
		mu       sync.Mutex
		next     int
		firstErr error
		released []string
		wg       sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if res.Paused || firstErr != nil || next >= len(claimed) {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range min(inboxParallel, len(claimed)) {
		wg.Go(func() {
			for {
				i, ok := take()
				if !ok {
					return
				}
				r := claimed[i]
				var n payment.Notification
				d := Delivery{}
				if err := json.Unmarshal(r.content, &n); err != nil {
					d.Err = fmt.Errorf("decode: %w", err)
				} else {
					d = deliver(n)
				}
				if d.Err != nil && d.Paused {
					mu.Lock()
					if !res.Paused {
						res.Paused = true
						res.pauseErr = d.Err
					}
					released = append(released, r.id)
					mu.Unlock()
					return
				}
				parked, err := s.recordDelivery(ctx, r.id, r.attempts, d)
				mu.Lock()
				switch {
				case err != nil:
					if firstErr == nil {
						firstErr = err
					}
				case d.Err != nil:
					res.Failed++
					if parked {
						res.Parked++
					}
				default:
					res.Delivered++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if res.Paused || firstErr != nil {
		for _, r := range claimed[next:] {
			released = append(released, r.id)
		}
	}
	if res.Paused && len(released) > 0 {
		// Released at once rather than at the lease's end: Temporal may
		// be back by the next pass.
		_, _ = s.pool.Exec(ctx, `UPDATE notifications SET claimed_until = NULL, inbox_last_error = $2 WHERE id = ANY($1)`,
			released, truncateText(res.pauseErr.Error(), 500))
	}
	return res, firstErr
}

// inboxParallel is how many inbox rows a relay delivers at once.
const inboxParallel = 8

// recordDelivery records one row's fate: delivered, or failed (tried again
// later with backoff, parked after InboxParkAfter attempts).
func (s *Store) recordDelivery(ctx context.Context, id string, attempts int, d Delivery) (parked bool, err error) {
	if d.Err != nil {
		attempts++
		state := inboxPending
		if attempts >= InboxParkAfter {
			state = inboxParked
		}
		_, err := s.pool.Exec(ctx, `
			UPDATE notifications SET inbox_state = $2, inbox_attempts = $3, inbox_next_attempt_at = now() + $4::interval,
				inbox_last_error = $5, claimed_until = NULL
			WHERE id = $1`, id, state, attempts, inboxBackoff(attempts).String(), truncateText(d.Err.Error(), 500))
		if err != nil {
			return false, fmt.Errorf("claim inbox: record failure of %s: %w", id, err)
		}
		return state == inboxParked, nil
	}
	_, err = s.pool.Exec(ctx, `
		UPDATE notifications SET inbox_state = $2, delivered_at = now(), outcome = $3, claimed_until = NULL,
			inbox_attempts = inbox_attempts + 1,
			examined_at = CASE WHEN $4 THEN coalesce(examined_at, now()) ELSE examined_at END
		WHERE id = $1`, id, inboxDelivered, "inbox, then "+string(d.Outcome), d.Examined)
	if err != nil {
		return false, fmt.Errorf("claim inbox: mark %s: %w", id, err)
	}
	return false, nil
}

// InboxRow is an inbox row as operators see it.
type InboxRow struct {
	ID            string     `json:"id"`
	OutTradeNo    string     `json:"out_trade_no"`
	State         string     `json:"state"`
	Attempts      int        `json:"attempts"`
	LastError     string     `json:"last_error,omitempty"`
	ReceivedAt    time.Time  `json:"received_at"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// InboxRows lists inbox rows in state (pending or parked), oldest first.
func (s *Store) InboxRows(ctx context.Context, state string, limit int) ([]InboxRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, coalesce(out_trade_no, ''), inbox_state, inbox_attempts, coalesce(inbox_last_error, ''), received_at, inbox_next_attempt_at
		FROM notifications WHERE inbox_state = $1 ORDER BY received_at, id LIMIT $2`, state, limit)
	if err != nil {
		return nil, fmt.Errorf("inbox rows: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxRow, error) {
		var v InboxRow
		err := r.Scan(&v.ID, &v.OutTradeNo, &v.State, &v.Attempts, &v.LastError, &v.ReceivedAt, &v.NextAttemptAt)
		v.ReceivedAt = v.ReceivedAt.UTC()
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("inbox rows: %w", err)
	}
	if out == nil {
		out = []InboxRow{}
	}
	return out, nil
}

// ErrNotParked: RedriveInbox found no parked inbox row with that id.
var ErrNotParked = errors.New("no parked inbox row with that id")

// RedriveInbox puts a parked inbox row back in line, due now, with its
// attempts reset: an operator fixed what kept it from being delivered.
func (s *Store) RedriveInbox(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE notifications SET inbox_state = $2, inbox_attempts = 0, inbox_next_attempt_at = now(), claimed_until = NULL
		WHERE id = $1 AND inbox_state = $3`, id, inboxPending, inboxParked)
	if err != nil {
		return fmt.Errorf("redrive inbox %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("redrive inbox %s: %w", id, ErrNotParked)
	}
	return nil
}

// ParkedInbox counts parked inbox rows (a gauge for alerts).
func (s *Store) ParkedInbox(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM notifications WHERE inbox_state = $1`, inboxParked).Scan(&n); err != nil {
		return 0, fmt.Errorf("parked inbox: %w", err)
	}
	return n, nil
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// orderNotifications returns the audit trail of an order, oldest first;
// never nil, so the order's JSON has "notifications": [].
func orderNotifications(ctx context.Context, tx pgx.Tx, outTradeNo string) ([]payment.NotificationRecord, error) {
	rows, err := tx.Query(ctx, `
		SELECT id, coalesce(source, ''), coalesce(transaction_id, ''), coalesce(amount_fen, 0), received_at,
			received_count, outcome, coalesce(inbox_state, ''), delivered_at, examined_at, kind, coalesce(event_type, ''), content
		FROM notifications WHERE out_trade_no = $1
		ORDER BY received_at, id`, outTradeNo)
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (payment.NotificationRecord, error) {
		var r payment.NotificationRecord
		var content []byte
		err := row.Scan(&r.ID, &r.Version, &r.TransactionID, &r.AmountFen, &r.ReceivedAt,
			&r.ReceivedCount, &r.Outcome, &r.InboxState, &r.DeliveredAt, &r.ExaminedAt, &r.Kind, &r.EventType, &content)
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
