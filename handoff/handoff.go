// Package handoff gives a verified payment notification to its order's
// workflow, durably: through Temporal when it answers, or into the
// PostgreSQL inbox when it does not, from where the worker's relay delivers
// it later. The api and the relay share it, so both deliver the same way.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/payment"
)

// Outcomes, for the audit trail, logs and metrics.
const (
	Recorded      = payment.NotifyRecorded      // the order's workflow holds the notification
	AlreadyPaid   = payment.NotifyAlreadyPaid   // the order is PAID by this very transaction
	RecordedAgain = payment.NotifyRecordedAgain // the order's workflow had ended; a new run holds it
	Inbox         = payment.NotifyInbox         // Temporal did not answer; committed to the PostgreSQL inbox
)

// Store is the part of the store a handoff uses: the order (to recognise a
// late duplicate) and the audit trail with its inbox.
type Store interface {
	OrderRow(ctx context.Context, outTradeNo string) (payment.Order, error)
	KeepHandingOver(ctx context.Context, n payment.Notification) (created bool, err error)
	SettleHandOver(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome, created bool) error
	AuditExamined(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome) error
	EnqueueNotification(ctx context.Context, n payment.Notification) error
}

// Gateway is how a handoff reaches an order's workflow (package gateway).
type Gateway interface {
	Notify(ctx context.Context, n payment.Notification, startNew bool, status payment.Status) error
}

// Handoff delivers notifications to workflows.
type Handoff struct {
	Gateway Gateway
	Store   Store
	Logger  *slog.Logger

	// flights joins concurrent copies of one notification (by id) into one
	// delivery. WeChat sends some notifications twice at the same instant;
	// a second SignalWithStart would only wait behind the first on the
	// run's lock in Temporal and then be recognised there as a repeat, and
	// the wait was most of the acknowledgement's p99 (docs/benchmarks.md).
	// Each copy still writes its own audit row, so every delivery is
	// counted. Copies at different apis are still two deliveries, which the
	// workflow recognises by id.
	flights singleflight.Group
}

// Accept makes a verified notification durable and returns how. It returns
// nil only when the notification is held by the order's workflow, or
// committed to the inbox, or the order is already PAID by the same
// transaction: then the caller may acknowledge WeChat. The notification is
// also kept in the audit trail.
//
// The audit row is written while Temporal takes the notification, not
// after: it was a third of the acknowledgement's time at p50 and most of
// what the api added at p99 (docs/benchmarks.md). It is written as
// recorded, the usual outcome, and corrected once the hand-over ends
// otherwise. The answer still waits for both.
func (h *Handoff) Accept(ctx context.Context, n payment.Notification) (payment.NotificationOutcome, error) {
	type kept struct {
		created bool
		err     error
	}
	keeping := make(chan kept, 1)
	go func() {
		created, err := h.Store.KeepHandingOver(ctx, n)
		keeping <- kept{created, err}
	}()
	// Temporal gets at most half of the time left: when it is down the SDK
	// retries until its deadline, and the inbox must still have time to
	// commit before WeChat's 5 s are up.
	dctx, cancel := context.WithTimeout(ctx, deliverBudget(ctx))
	outcome, err := h.deliverOnce(dctx, n)
	cancel()
	k := <-keeping
	if err == nil {
		h.settle(ctx, n, outcome, k.created, k.err)
		return outcome, nil
	}
	// Temporal did not answer: the notification goes to the inbox. If
	// this delivery made the audit row, the row becomes the inbox entry;
	// if the row was there before, an earlier copy is held or queued
	// already (or an earlier attempt failed after writing it: the row is
	// then unexamined, and the safety net hands it over); if no row could
	// be written, inbox row and audit row are written as one. Only if that
	// fails is the notification unrecorded, and WeChat must retry.
	h.Logger.Warn("Temporal did not take the notification in time; committing it to the inbox", "id", n.ID, "err", err)
	var qerr error
	switch {
	case k.err == nil && k.created:
		qerr = h.Store.SettleHandOver(ctx, n, Inbox, true)
	case k.err == nil:
	default:
		qerr = h.Store.EnqueueNotification(ctx, n)
	}
	if qerr != nil {
		return "", fmt.Errorf("%w; inbox: %v", err, qerr)
	}
	return Inbox, nil
}

// settle completes the audit row of a notification Temporal holds. The
// row is a record, not the guarantee, so a database hiccup here does not
// fail the acknowledgement. A late copy of the payment the order is PAID
// by is examined by being recognised here.
func (h *Handoff) settle(ctx context.Context, n payment.Notification, outcome payment.NotificationOutcome, created bool, keepErr error) {
	var err error
	switch {
	case keepErr != nil && outcome == AlreadyPaid:
		// A second try, which also marks it examined.
		if aerr := h.Store.AuditExamined(ctx, n, outcome); aerr != nil {
			err = errors.Join(keepErr, aerr)
		}
	case keepErr != nil:
		err = keepErr
	case outcome != Recorded:
		err = h.Store.SettleHandOver(ctx, n, outcome, created)
	}
	if err != nil {
		h.Logger.Warn("notification held by Temporal, but not written to the audit trail", "id", n.ID, "outcome", string(outcome), "err", err)
	}
}

// deliverBudget is the time Accept gives Temporal: half of what is left,
// or 2 s without a deadline.
func deliverBudget(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d) / 2
	}
	return 2 * time.Second
}

// deliverOnce is Deliver, shared by the copies of n in flight at once. A
// copy that joins gets the first one's result: if that failed (its
// caller's deadline, say), each falls back to the inbox on its own.
func (h *Handoff) deliverOnce(ctx context.Context, n payment.Notification) (payment.NotificationOutcome, error) {
	if n.ID == "" {
		return h.Deliver(ctx, n)
	}
	v, err, _ := h.flights.Do(n.ID, func() (any, error) { return h.Deliver(ctx, n) })
	outcome, _ := v.(payment.NotificationOutcome)
	return outcome, err
}

// Deliver gives the notification to the order's workflow through Temporal.
func (h *Handoff) Deliver(ctx context.Context, n payment.Notification) (payment.NotificationOutcome, error) {
	// A completed run is not silently followed by a new one for a
	// duplicate of a payment it already completed.
	err := h.Gateway.Notify(ctx, n, false, "")
	if !errors.Is(err, gateway.ErrRunCompleted) {
		if err != nil {
			return "", err
		}
		return Recorded, nil
	}
	// The workflow has finished. If the order is PAID by this transaction
	// the notification is a late duplicate: acknowledge, start nothing.
	order, gerr := h.Store.OrderRow(ctx, n.OutTradeNo)
	if gerr == nil && n.Kind == payment.KindPayment && n.Succeeded() &&
		(order.Status == payment.StatusPaid || order.Status == payment.StatusRefunded) && order.TransactionID == n.TransactionID {
		return AlreadyPaid, nil
	}
	// Anything else (another transaction, a failed payment, a refund, an
	// order in REVIEW, an unknown order) still needs looking at: a new run,
	// whose search attributes start with the order's real status.
	var status payment.Status
	if gerr == nil {
		status = order.Status
	}
	if err := h.Gateway.Notify(ctx, n, true, status); err != nil {
		return "", err
	}
	return RecordedAgain, nil
}
