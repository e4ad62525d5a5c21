package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// MarkPaidInput is a payment confirmed by WeChat's order query and verified
// against the order.
type MarkPaidInput struct {
	OutTradeNo    string         `json:"out_trade_no"`
	TransactionID string         `json:"transaction_id"`
	PaidAt        time.Time      `json:"paid_at"`
	Source        payment.Source `json:"source"`
}

// MarkPaidResult is what the database made of it: "paid", "already_paid"
// or "review" (a second transaction, or paid after close).
type MarkPaidResult struct {
	Outcome string `json:"outcome"`
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
	})
	if err := storeError("mark paid", in.OutTradeNo, err); err != nil {
		return MarkPaidResult{}, err
	}
	// Counted only when this call changed the order: a retried or replayed
	// activity finds it already decided and counts nothing.
	if out == store.OutcomePaid {
		a.Metrics.OrderFinal(string(payment.StatusPaid))
	}
	return MarkPaidResult{Outcome: string(out)}, nil
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
	OutTradeNo string `json:"out_trade_no"`
	Reason     string `json:"reason"`
	Key        string `json:"key"`
}

// MarkReviewResult reports whether the order changed.
type MarkReviewResult struct {
	Changed bool `json:"changed"`
}

// MarkReview moves the order to REVIEW with one log row saying why.
func (a *Activities) MarkReview(ctx context.Context, in MarkReviewInput) (MarkReviewResult, error) {
	changed, err := a.Orders.MarkReview(ctx, in.OutTradeNo, in.Reason, in.Key)
	if err := storeError("mark review", in.OutTradeNo, err); err != nil {
		return MarkReviewResult{}, err
	}
	if changed {
		a.Metrics.OrderFinal(string(payment.StatusReview))
	}
	return MarkReviewResult{Changed: changed}, nil
}

// OrderLogInput is an event in the order's history that changes no status.
type OrderLogInput struct {
	OutTradeNo string `json:"out_trade_no"`
	Remarks    string `json:"remarks"`
	Key        string `json:"key"`
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
	Notification payment.Notification `json:"notification"`
	Outcome      string               `json:"outcome"`
}

// RecordNotificationResult reports whether the row was new.
type RecordNotificationResult struct {
	Inserted bool `json:"inserted"`
}

// RecordNotification stores the notification, once per notification id.
func (a *Activities) RecordNotification(ctx context.Context, in RecordNotificationInput) (RecordNotificationResult, error) {
	ins, err := a.Orders.RecordNotification(ctx, in.Notification, in.Outcome)
	if err != nil {
		return RecordNotificationResult{}, fmt.Errorf("record notification %s: %w", in.Notification.ID, err)
	}
	return RecordNotificationResult{Inserted: ins}, nil
}
