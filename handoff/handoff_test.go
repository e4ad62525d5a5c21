package handoff

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

// deadTemporal behaves like the SDK against a server that is down: it
// retries until the context ends.
type deadTemporal struct{}

func (deadTemporal) Notify(ctx context.Context, _ payment.Notification, _ bool, _ payment.Status) error {
	<-ctx.Done()
	return errors.New("temporal unavailable: " + ctx.Err().Error())
}

// inboxOnly records what was enqueued, failing if its context is already
// spent (as PostgreSQL would).
type inboxOnly struct{ queued []string }

func (inboxOnly) OrderRow(context.Context, string) (payment.Order, error) {
	return payment.Order{}, nil
}
func (inboxOnly) AuditNotification(context.Context, payment.Notification, payment.NotificationOutcome) error {
	return errors.New("not expected")
}
func (inboxOnly) AuditExamined(context.Context, payment.Notification, payment.NotificationOutcome) error {
	return errors.New("not expected")
}
func (s *inboxOnly) EnqueueNotification(ctx context.Context, n payment.Notification) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.queued = append(s.queued, n.ID)
	return nil
}

// With Temporal down, Accept leaves the inbox enough of the request's time
// to commit, and answers well inside the deadline.
func TestAcceptFallsBackToInboxInTime(t *testing.T) {
	st := &inboxOnly{}
	h := &Handoff{Gateway: deadTemporal{}, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	outcome, err := h.Accept(ctx, payment.Notification{ID: "v2:abc", OutTradeNo: "ORDER1"})
	if err != nil || outcome != Inbox || len(st.queued) != 1 {
		t.Fatalf("Accept = %q, %v; queued %v", outcome, err, st.queued)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Fatalf("Accept took %s of a 400ms budget", d)
	}
}
