package handoff

import (
	"context"
	"log/slog"
	"time"

	"github.com/payflow/payflow/payment"
)

// InboxStore is the store's inbox as the relay sees it.
type InboxStore interface {
	// ClaimInbox locks up to limit pending rows (FOR UPDATE SKIP LOCKED, so
	// several relays share the work), calls deliver for each in order,
	// marks those delivered and commits. It stops at the first failure.
	ClaimInbox(ctx context.Context, limit int, deliver func(payment.Notification) (string, error)) (int, error)
}

// Relay hands inbox rows to their workflows once Temporal answers again.
// A row is marked delivered only after Temporal recorded it; delivering a
// row twice (a crash between the two) is harmless, since the workflow
// recognises a notification id it has seen and the database guards every
// status change.
type Relay struct {
	Handoff  *Handoff
	Inbox    InboxStore
	Interval time.Duration
	Logger   *slog.Logger
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		r.drain(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drain relays batches until the inbox is empty or a delivery fails.
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := r.Inbox.ClaimInbox(ctx, 50, func(n payment.Notification) (string, error) {
			dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			return r.Handoff.Deliver(dctx, n)
		})
		if n > 0 {
			r.Logger.Info("relayed inbox notifications", "count", n)
		}
		if err != nil {
			r.Logger.Warn("inbox relay paused", "delivered", n, "err", err)
			return
		}
		if n < 50 {
			return
		}
	}
}
