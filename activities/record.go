package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"go.temporal.io/sdk/temporal"
)

// MarkPaidInput is a payment confirmed by WeChat's order query and verified
// against the order.
type MarkPaidInput struct {
	OutTradeNo    string         `json:"out_trade_no"`
	TransactionID string         `json:"transaction_id"`
	PaidAt        time.Time      `json:"paid_at"`
	Source        payment.Source `json:"source"`
	PaidFen       int64          `json:"paid_fen,omitempty"` // what WeChat says was paid
}

// MarkPaidResult is what the database made of it: "paid", "already_paid"
// or "review" (a second transaction, or paid after close: now or before).
type MarkPaidResult struct {
	Outcome payment.PaidOutcome `json:"outcome"`
}

// MarkPaid moves the order PENDING → PAID and writes its one PAID log row in
// the same transaction. The database decides under a row lock, so replays,
// retries and concurrent workers change the order once.
func (a *Activities) MarkPaid(ctx context.Context, in MarkPaidInput) (MarkPaidResult, error) {
	paidAt := in.PaidAt
	if paidAt.IsZero() {
		paidAt = a.now()
	}
	out, err := a.Orders.MarkPaid(ctx, store.MarkPaidParams{
		OutTradeNo:    in.OutTradeNo,
		TransactionID: in.TransactionID,
		PaidAt:        paidAt,
		Remarks:       PaidRemarks(in.TransactionID, in.Source),
		PaidFen:       in.PaidFen,
	})
	if err := storeError("mark paid", in.OutTradeNo, err); err != nil {
		return MarkPaidResult{}, err
	}
	// Counted only when this call changed the order, whichever way: a
	// retried or replayed activity finds it decided and counts nothing.
	switch out {
	case store.OutcomePaid:
		a.Metrics.OrderFinal(string(payment.StatusPaid))
	case store.OutcomeReview:
		a.Metrics.OrderFinal(string(payment.StatusReview))
	case store.OutcomeAlreadyReview:
		out = store.OutcomeReview
	}
	return MarkPaidResult{Outcome: out}, nil
}

// PaidRemarks is the PAID log row's text: it names the transaction and how
// the payment was learned of.
func PaidRemarks(transactionID string, source payment.Source) string {
	how := "notification " + string(source)
	if source == payment.SourceQuery {
		how = "order query (no notification)"
	}
	return fmt.Sprintf("paid: transaction %s, confirmed by WeChat order query, via %s", transactionID, how)
}

// MarkReviewInput sends an order to REVIEW with a reason; Key makes a
// repeated call a no-op.
type MarkReviewInput struct {
	OutTradeNo string      `json:"out_trade_no"`
	Reason     string      `json:"reason"`
	Key        payment.Key `json:"key"`
	// A payment WeChat confirmed that does not add up: the order keeps it
	// so that it can be refunded.
	TransactionID string    `json:"transaction_id,omitempty"`
	PaidFen       int64     `json:"paid_fen,omitempty"`
	PaidAt        time.Time `json:"paid_at,omitzero"`
	// AllowFromPaid: the bill reconciliation's request for a PAID order.
	AllowFromPaid bool `json:"allow_from_paid,omitempty"`
}

// MarkReviewResult reports whether the order changed, and its status.
type MarkReviewResult struct {
	Changed bool           `json:"changed"`
	Status  payment.Status `json:"status,omitempty"`
}

// MarkReview moves the order to REVIEW with one log row saying why. A PAID
// order stays PAID unless the bill reconciliation asks.
func (a *Activities) MarkReview(ctx context.Context, in MarkReviewInput) (MarkReviewResult, error) {
	out, err := a.Orders.MarkReview(ctx, store.MarkReviewParams{
		OutTradeNo: in.OutTradeNo, Reason: in.Reason, Key: in.Key,
		TransactionID: in.TransactionID, PaidFen: in.PaidFen, PaidAt: in.PaidAt, AllowFromPaid: in.AllowFromPaid,
	})
	if err := storeError("mark review", in.OutTradeNo, err); err != nil {
		return MarkReviewResult{}, err
	}
	if out.Changed {
		a.Metrics.OrderFinal(string(payment.StatusReview))
	}
	return MarkReviewResult{Changed: out.Changed, Status: out.Status}, nil
}

// MarkExaminedInput lists the notifications the order's workflow examined.
type MarkExaminedInput struct {
	OutTradeNo    string                 `json:"out_trade_no"`
	Notifications []payment.Notification `json:"notifications"`
}

// MarkExamined records in the audit trail that the order's workflow
// examined the notifications, so the safety net knows none is stranded.
func (a *Activities) MarkExamined(ctx context.Context, in MarkExaminedInput) error {
	if err := a.Orders.MarkExamined(ctx, in.Notifications); err != nil {
		return fmt.Errorf("mark examined %s: %w", in.OutTradeNo, err)
	}
	return nil
}

// OrderLogInput is an event in the order's history that changes no status.
type OrderLogInput struct {
	OutTradeNo string      `json:"out_trade_no"`
	Remarks    string      `json:"remarks"`
	Key        payment.Key `json:"key"`
}

// OrderLogResult reports whether the row was new.
type OrderLogResult struct {
	Inserted bool `json:"inserted"`
}

// OrderLog writes one log row, once per key.
func (a *Activities) OrderLog(ctx context.Context, in OrderLogInput) (OrderLogResult, error) {
	ins, err := a.Orders.AppendLog(ctx, in.OutTradeNo, in.Remarks, in.Key)
	if err := storeError("order log", in.OutTradeNo, err); err != nil {
		return OrderLogResult{}, err
	}
	return OrderLogResult{Inserted: ins}, nil
}

// RecordNotificationInput keeps a notification that could not be applied.
type RecordNotificationInput struct {
	Notification payment.Notification        `json:"notification"`
	Outcome      payment.NotificationOutcome `json:"outcome"`
}

// RecordNotificationResult reports whether the row was new.
type RecordNotificationResult struct {
	Inserted bool `json:"inserted"`
}

// RecordNotification stores the notification, once per notification id.
// A payment notification for an order we do not have is a REVIEW that
// operators must hear about: counted when first recorded.
func (a *Activities) RecordNotification(ctx context.Context, in RecordNotificationInput) (RecordNotificationResult, error) {
	ins, err := a.Orders.RecordNotification(ctx, in.Notification, in.Outcome)
	if err != nil {
		return RecordNotificationResult{}, fmt.Errorf("record notification %s: %w", in.Notification.ID, err)
	}
	if ins && in.Outcome == payment.NotifyUnknownOrder {
		a.Metrics.OrderFinal(string(payment.StatusReview))
	}
	return RecordNotificationResult{Inserted: ins}, nil
}

// Error types of a resolution the database refused.
const (
	ErrTypeNotInReview   = "NotInReview"
	ErrTypeNoTransaction = "NoTransaction"
)

// ResolveReviewInput is an operator's decision about an order in REVIEW.
type ResolveReviewInput struct {
	OutTradeNo string         `json:"out_trade_no"`
	To         payment.Status `json:"to"` // PAID or CLOSED
	Remarks    string         `json:"remarks"`
	Key        payment.Key    `json:"key"`
}

// ResolveReviewResult is the order's status afterwards.
type ResolveReviewResult struct {
	Changed bool           `json:"changed"`
	Status  payment.Status `json:"status"`
}

// ResolveReview moves an order out of REVIEW as an operator decided, with
// its log row; counted like any change to a final status.
func (a *Activities) ResolveReview(ctx context.Context, in ResolveReviewInput) (ResolveReviewResult, error) {
	changed, status, err := a.Orders.ResolveReview(ctx, in.OutTradeNo, in.To, in.Remarks, in.Key)
	switch {
	case errors.Is(err, store.ErrNotInReview):
		return ResolveReviewResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("order %s is %s, not in REVIEW", in.OutTradeNo, status), ErrTypeNotInReview, err)
	case errors.Is(err, store.ErrNoTransaction):
		return ResolveReviewResult{}, temporal.NewNonRetryableApplicationError(
			"order "+in.OutTradeNo+" has no transaction: nothing was paid that could be accepted", ErrTypeNoTransaction, err)
	}
	if err := storeError("resolve", in.OutTradeNo, err); err != nil {
		return ResolveReviewResult{}, err
	}
	if changed {
		a.Metrics.OrderFinal(string(status))
	}
	return ResolveReviewResult{Changed: changed, Status: status}, nil
}
