package payment

// Idempotency keys of order log rows. Every status change or recorded event
// writes its log row under one of these keys, unique per order in
// PostgreSQL (order_logs (out_trade_no, idempotency_key)): a retried,
// replayed or repeated step that would write the same key changes nothing.
// They are made here, in one place, so that two paths that mean the same
// change cannot spell it differently, and two different changes cannot
// collide.
type Key string

// Keys of the order's lifecycle.
const (
	KeyCreated        Key = "created"         // the order was created
	KeyClosedExpired  Key = "closed:expired"  // closed at its expiry
	KeyClosedMerchant Key = "closed:merchant" // closed by POST /orders/{no}/close
	KeyClosedPrepay   Key = "closed:prepay"   // WeChat refused the prepay
	// KeyReviewPrepayPaid: a prepay refused as already paid that WeChat's
	// query does not confirm.
	KeyReviewPrepayPaid Key = "review:prepay-paid"
	// KeyReviewClosePaid: a close refused as already paid that WeChat's
	// query does not confirm.
	KeyReviewClosePaid Key = "review:close-paid"
	// KeyReviewConfirmNotExist: the bill has a payment WeChat's query does
	// not know.
	KeyReviewConfirmNotExist Key = "review:confirm-notexist"
)

// KeyPaid is the one PAID row of a payment.
func KeyPaid(transactionID string) Key { return Key("paid:" + transactionID) }

// KeyFailedPayment records a FAIL notification of a PENDING order.
func KeyFailedPayment(notificationID string) Key { return Key("failed:" + notificationID) }

// KeyReviewQuery: notified as paid, WeChat's signed query says no such order.
func KeyReviewQuery(notificationID string) Key { return Key("review:query:" + notificationID) }

// KeyReviewState: notified as paid, WeChat's query stays unpaid.
func KeyReviewState(notificationID string) Key { return Key("review:state:" + notificationID) }

// KeyReviewMismatch: a confirmed payment whose amount or ids differ.
func KeyReviewMismatch(transactionID string) Key { return Key("review:mismatch:" + transactionID) }

// KeyReviewSecondTx: a second transaction for a paid order.
func KeyReviewSecondTx(transactionID string) Key { return Key("review:second-tx:" + transactionID) }

// KeyReviewPaidAfterClose: a payment of a CLOSED order.
func KeyReviewPaidAfterClose(transactionID string) Key {
	return Key("review:paid-after-close:" + transactionID)
}

// KeyReviewTxReused: a transaction that already paid another order.
func KeyReviewTxReused(transactionID string) Key { return Key("review:tx-reused:" + transactionID) }

// KeyReviewConfirmState: the bill has a payment WeChat's query says is in
// another state.
func KeyReviewConfirmState(tradeState string) Key { return Key("review:confirm:" + tradeState) }

// KeyReviewRefundMismatch: WeChat's refund differs from ours.
func KeyReviewRefundMismatch(outRefundNo string) Key {
	return Key("review:refund-mismatch:" + outRefundNo)
}

// KeyReviewBill: WeChat's trade bill of a Beijing day (YYYY-MM-DD) and our
// books differ by kind (paid_here_only, amount_mismatch) for the order, or
// for one of its refunds (outRefundNo, else empty). Once per day, kind,
// order and refund, however often the day is reconciled.
func KeyReviewBill(date, kind, outTradeNo, outRefundNo string) Key {
	k := "review:bill:" + date + ":" + kind + ":" + outTradeNo
	if outRefundNo != "" {
		k += ":" + outRefundNo
	}
	return Key(k)
}

// KeyRefund is the one row of a refund reaching status.
func KeyRefund(outRefundNo string, status RefundStatus) Key {
	return Key("refund:" + outRefundNo + ":" + string(status))
}

// KeyResolved records an operator's resolution of a REVIEW.
func KeyResolved(action string) Key { return Key("resolved:" + action) }

// KeyResolvedRefund records a resolution by refund.
func KeyResolvedRefund(outRefundNo string) Key { return Key("resolved:refund:" + outRefundNo) }

// PaidOutcome says what recording a confirmed payment did.
type PaidOutcome string

const (
	PaidNow       PaidOutcome   = "paid"         // the order is now PAID by this transaction
	PaidAlready   PaidOutcome   = "already_paid" // it was PAID (or REFUNDED) by this transaction already; nothing written
	PaidReview    PaidOutcome   = "review"       // the order went to REVIEW now, with its log row
	PaidInReview  PaidOutcome   = "already_review"
	ClosedNow     ClosedOutcome = "closed"         // the order is now CLOSED
	ClosedAlready ClosedOutcome = "already_closed" // it was CLOSED already; nothing written
	ClosedPaid    ClosedOutcome = "paid"           // it was PAID: nothing written (the payment came first)
	ClosedReview  ClosedOutcome = "review"         // it was in REVIEW: nothing written
)

// ClosedOutcome says what closing an order in the database found.
type ClosedOutcome string

// NotificationOutcome says how a notification was taken: the audit
// trail's outcome, a metric label and a log field.
type NotificationOutcome string

const (
	NotifyRecorded      NotificationOutcome = "recorded"       // the order's workflow holds it
	NotifyAlreadyPaid   NotificationOutcome = "already_paid"   // a late copy of the payment the order is PAID by
	NotifyRecordedAgain NotificationOutcome = "recorded_again" // the order's workflow had ended; a new run holds it
	NotifyInbox         NotificationOutcome = "inbox"          // Temporal did not answer; committed to the inbox
	NotifyIgnored       NotificationOutcome = "ignored"        // a verified event of another kind: kept, nothing else
	NotifyUnknownOrder  NotificationOutcome = "unknown_order"  // for an order we do not have: recorded, nothing created
)
