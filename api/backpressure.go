package api

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/payflow/payflow/metrics"
)

// Backpressure sheds new notifications while the workers are behind.
//
// NOTIFY_MAX_IN_FLIGHT bounds the hand-overs in flight, but a hand-over is
// fast even when the workers are far behind: Temporal takes the signal and
// queues the run's next task. Under twice the load the workers could take,
// that queue grew until tasks waited longer than the sticky-queue timeout,
// were replayed from their whole history elsewhere, and the workers did
// more work per payment exactly when there was too much
// (docs/benchmarks.md, "Overload"). So the api also follows how far the
// workers really are behind: notifications it handed over that no
// workflow has examined yet, read from the audit trail. While more than
// Limit of those are older than Lag, new notifications are answered 503
// before any work; WeChat sends them again (15 s later, then for a day),
// by when the backlog is lower. The workers stay busy with a few seconds'
// worth of work and no more.
//
// A few notifications that stay unexamined (an order's run failing) do
// not stop the api: only a count above Limit does, and only those received
// within Window count.
//
// Without a fresh count it takes notifications: if the backlog cannot be
// read for Stale (PostgreSQL down, say), the api stops shedding, because
// Temporal alone can still hold a notification (the audit row is a
// record, not the guarantee) and refusing them all would turn a database
// outage into a notification outage. A read that fails once, under load,
// keeps the last decision for that long, so a slow database does not let
// a flood in.
type Backpressure struct {
	// Count counts the notifications received in [from, to) handed to a
	// workflow and not yet examined (store.NotificationBacklog).
	Count   func(ctx context.Context, from, to time.Time) (int, error)
	Limit   int           // NOTIFY_SHED_BACKLOG; 0 never sheds
	Lag     time.Duration // a notification older than this and not examined counts
	Window  time.Duration // only notifications received this recently count
	Every   time.Duration // how often the backlog is read
	Stale   time.Duration // without a good read for this long, stop shedding
	Logger  *slog.Logger
	Metrics *metrics.Metrics // nil records nothing
	Now     func() time.Time

	shedding atomic.Bool
	lastRead time.Time // of the last good read; only Run's goroutine touches it
}

// Backpressure's fixed parameters. A payment is examined within a second
// at the saturation rate (docs/benchmarks.md), so 2 s unexamined is
// behind, and notifications taken in the last 2 s are not yet counted:
// the lag bounds how much more the api takes before it sees the backlog.
// A minute's window outlasts any backlog the api lets grow and is cheap to
// count (the unexamined rows' partial index).
const (
	DefaultBackpressureLag    = 2 * time.Second
	DefaultBackpressureWindow = time.Minute
	DefaultBackpressureEvery  = 500 * time.Millisecond
	DefaultBackpressureStale  = 5 * time.Second
)

// Shedding reports whether new notifications are to be answered 503. A nil
// Backpressure never sheds.
func (b *Backpressure) Shedding() bool { return b != nil && b.shedding.Load() }

// Run reads the backlog every Every until ctx ends. A failed read keeps
// the last decision until no read has succeeded for Stale; then the api
// takes notifications again.
func (b *Backpressure) Run(ctx context.Context) {
	if b == nil || b.Limit <= 0 {
		return
	}
	t := time.NewTicker(b.Every)
	defer t.Stop()
	for {
		b.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check reads the backlog once and decides.
func (b *Backpressure) check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, b.Every)
	defer cancel()
	now := b.Now()
	n, err := b.Count(ctx, now.Add(-b.Window), now.Add(-b.Lag))
	if err != nil {
		if ctx.Err() == nil {
			b.Logger.Warn("backpressure: could not read the notification backlog", "err", err)
		}
		if now.Sub(b.lastRead) >= b.Stale && b.shedding.Swap(false) {
			b.Logger.Warn("backpressure: no backlog count for a while; notifications are taken again until it can be read",
				"last_read", b.lastRead, "stale_after", b.Stale.String())
		}
		return
	}
	b.lastRead = now
	b.Metrics.NotificationBacklog(n)
	shed := n > b.Limit
	if b.shedding.Swap(shed) != shed {
		if shed {
			b.Logger.Warn("the workers are behind: new notifications are answered 503 until they catch up (WeChat sends them again)",
				"backlog", n, "limit", b.Limit, "older_than", b.Lag.String())
		} else {
			b.Logger.Info("the workers caught up: notifications are taken again", "backlog", n, "limit", b.Limit)
		}
	}
}
