package workflows

import (
	"time"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// maxCarriedIDs bounds the notification ids a run carries into the next
// when it continues as new. An older id arriving again is examined again,
// which is harmless: every status change is guarded by the database.
const maxCarriedIDs = 200

// Carry is what a run hands to the run it continues as new into: everything
// it knows and everything not yet done, so nothing is lost across the
// boundary.
type Carry struct {
	State          State                  `json:"state"`
	Lifecycle      *Lifecycle             `json:"lifecycle,omitempty"`
	Settings       activities.Settings    `json:"settings"`
	Queue          []payment.Notification `json:"queue,omitempty"`
	Seen           []string               `json:"seen,omitempty"`
	Unexamined     []payment.Notification `json:"unexamined,omitempty"`
	SyncRequested  bool                   `json:"sync_requested,omitempty"`
	CloseRequested bool                   `json:"close_requested,omitempty"`
	Confirms       []ConfirmRequest       `json:"confirms,omitempty"`
	Reviews        []ReviewRequest        `json:"reviews,omitempty"`
	Tracks         []TrackRefundRequest   `json:"tracks,omitempty"`
	ReloadRefunds  bool                   `json:"reload_refunds,omitempty"`
	Interval       time.Duration          `json:"interval,omitempty"`
	NextQuery      time.Time              `json:"next_query,omitzero"`
	CloseBackoff   time.Duration          `json:"close_backoff,omitempty"`
	CloseRetryAt   time.Time              `json:"close_retry_at,omitzero"`
	LingerUntil    time.Time              `json:"linger_until,omitzero"`
	IdleSince      time.Time              `json:"idle_since,omitzero"`
	PrepayDone     bool                   `json:"prepay_done,omitempty"`
	Prepay         payment.Prepay         `json:"prepay"`
	PrepayError    string                 `json:"prepay_error,omitempty"`
	Refunds        []refundTrack          `json:"refunds,omitempty"`
}

func (p *flow) carry() *Carry {
	seen := p.seenOrder
	if len(seen) > maxCarriedIDs {
		seen = seen[len(seen)-maxCarriedIDs:]
	}
	c := &Carry{
		State: p.state, Lifecycle: p.lc, Settings: p.set, Queue: p.queue, Seen: seen, Unexamined: p.unexamined,
		SyncRequested: p.syncRequested, CloseRequested: p.closeRequested,
		Confirms: p.confirms, Reviews: p.reviews, Tracks: p.tracks, ReloadRefunds: p.reloadRefunds,
		Interval: p.interval, NextQuery: p.nextQuery, CloseBackoff: p.closeBackoff, CloseRetryAt: p.closeRetryAt,
		LingerUntil: p.lingerUntil, IdleSince: p.idleSince,
		PrepayDone: p.prepayDone, Prepay: p.prepay, PrepayError: p.prepayError,
	}
	c.State.Refunds = nil
	for _, r := range p.refunds {
		if !r.done() {
			c.Refunds = append(c.Refunds, *r)
		}
	}
	return c
}

func (p *flow) restore(c *Carry) {
	p.state, p.lc, p.set = c.State, c.Lifecycle, c.Settings
	p.queue, p.unexamined = c.Queue, c.Unexamined
	for _, id := range c.Seen {
		p.seen[id] = true
	}
	p.seenOrder = append([]string(nil), c.Seen...)
	p.syncRequested, p.closeRequested = c.SyncRequested, c.CloseRequested
	p.confirms, p.reviews, p.tracks, p.reloadRefunds = c.Confirms, c.Reviews, c.Tracks, c.ReloadRefunds
	p.interval, p.nextQuery, p.closeBackoff, p.closeRetryAt = c.Interval, c.NextQuery, c.CloseBackoff, c.CloseRetryAt
	p.lingerUntil, p.idleSince = c.LingerUntil, c.IdleSince
	p.prepayDone, p.prepay, p.prepayError = c.PrepayDone, c.Prepay, c.PrepayError
	for i := range c.Refunds {
		r := c.Refunds[i]
		p.refunds = append(p.refunds, &r)
	}
	p.loaded = true
}
