package handoff

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.temporal.io/api/serviceerror"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// InboxStore is the store's inbox as the relay sees it.
type InboxStore interface {
	// ClaimInbox leases up to limit due rows (FOR UPDATE SKIP LOCKED, so
	// several relays share the work), calls deliver for each, and records
	// each row's fate: delivered, tried again later, or parked.
	ClaimInbox(ctx context.Context, limit int, deliver func(payment.Notification) store.Delivery) (store.InboxResult, error)
	ParkedInbox(ctx context.Context) (int, error)
}

// Relay hands inbox rows to their workflows once Temporal answers again.
// A row is marked delivered only after Temporal recorded it; delivering a
// row twice (a crash between the two) is harmless, since the workflow
// recognises a notification id it has seen and the database guards every
// status change. A row that keeps failing for a reason of its own never
// holds up the others: it is retried with backoff and parked after
// store.InboxParkAfter attempts, for an operator to re-drive.
type Relay struct {
	Handoff  *Handoff
	Inbox    InboxStore
	Interval time.Duration
	Metrics  *metrics.Metrics // nil records nothing
	Logger   *slog.Logger
}

// batch is how many rows a relay claims at a time.
const batch = 50

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.drain(ctx)
		if n, err := r.Inbox.ParkedInbox(ctx); err == nil {
			r.Metrics.InboxParked(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drain relays batches until no row is due or Temporal is unreachable.
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		res, err := r.Inbox.ClaimInbox(ctx, batch, func(n payment.Notification) store.Delivery {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			outcome, err := r.Handoff.Deliver(dctx, n)
			return store.Delivery{Outcome: outcome, Examined: outcome == AlreadyPaid, Err: err, Paused: err != nil && unreachable(err)}
		})
		if res.Delivered > 0 || res.Failed > 0 {
			r.Logger.Info("relayed inbox notifications", "delivered", res.Delivered, "failed", res.Failed, "parked", res.Parked)
		}
		r.Metrics.InboxRelayed(res.Delivered, res.Failed, res.Parked)
		if err != nil {
			r.Logger.Warn("inbox relay", "err", err)
			return
		}
		if res.Paused {
			r.Logger.Warn("inbox relay paused: Temporal is unreachable", "delivered", res.Delivered)
			return
		}
		if res.Claimed < batch {
			return
		}
	}
}

// unreachable reports whether a delivery failed because Temporal could not
// be reached (not the row's fault: nothing is counted against it).
func unreachable(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	var exhausted *serviceerror.ResourceExhausted
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.As(err, &exhausted) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
