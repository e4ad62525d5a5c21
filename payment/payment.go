// Package payment holds the domain types shared by the api, the workflow,
// the activities, the store and the WeChat Pay clients. It has no
// dependencies so that workflow code can use it without pulling in I/O.
package payment

import (
	"encoding/json"
	"regexp"
	"time"
)

// Status is an order's status, as fixed by the interface (docs/interface.md).
type Status string

const (
	StatusPending Status = "PENDING" // created, not paid
	StatusPaid    Status = "PAID"    // WeChat's order query confirmed SUCCESS for the same amount
	StatusClosed  Status = "CLOSED"  // expired or closed unpaid
	StatusReview  Status = "REVIEW"  // money moved but something does not add up
	// StatusRefunded: the order's SUCCESS refunds add up to its paid amount.
	StatusRefunded Status = "REFUNDED"
)

// Decided reports whether the order's payment is settled one way or the
// other: anything but PENDING.
func (s Status) Decided() bool { return s != StatusPending && s != "" }

// Source names where a payment signal came from; it is the PaymentSource
// search attribute and appears in log remarks.
type Source string

const (
	SourceV2    Source = "v2"    // API v2 XML notification
	SourceV3    Source = "v3"    // API v3 JSON notification
	SourceQuery Source = "query" // found by our own order query
)

// Trade states reported by WeChat's order query and v3 notifications.
const (
	TradeSuccess    = "SUCCESS"
	TradeRefund     = "REFUND"
	TradeNotPay     = "NOTPAY"
	TradeClosed     = "CLOSED"
	TradeRevoked    = "REVOKED"
	TradeUserPaying = "USERPAYING"
	TradePayError   = "PAYERROR"
	TradeAccept     = "ACCEPT"
)

// TradeStateFinal reports whether a trade state will not change by itself.
// NOTPAY, USERPAYING and ACCEPT may still turn into SUCCESS.
func TradeStateFinal(state string) bool {
	switch state {
	case TradeNotPay, TradeUserPaying, TradeAccept:
		return false
	}
	return true
}

// Kind says what a verified notification is about. Only KindPayment,
// made from a transaction resource (v3 TRANSACTION.SUCCESS) or a v2 payment
// result, can ever mark an order paid.
type Kind string

const (
	// KindPayment is a payment result. It is the zero value, so
	// notifications recorded before kinds existed keep their meaning.
	KindPayment Kind = ""
	// KindRefund is a refund result (v3 REFUND.*, v2 req_info).
	KindRefund Kind = "refund"
	// KindOther is any other verified v3 event: acknowledged, audited and
	// counted, and nothing else.
	KindOther Kind = "other"
)

// Notification is a verified notification, whatever its wire format.
// The api builds it only after the signature and the merchant ids checked out.
type Notification struct {
	// ID identifies the notification for de-duplication: the v3 envelope id,
	// or for v2 (which has none) a digest of the signed content.
	ID            string    `json:"id"`
	Source        Source    `json:"source"`
	OutTradeNo    string    `json:"out_trade_no"`
	TransactionID string    `json:"transaction_id"`
	AppID         string    `json:"appid"`
	MchID         string    `json:"mch_id"`
	AmountFen     int64     `json:"amount_fen"`
	Currency      string    `json:"currency"`
	ResultCode    string    `json:"result_code"` // SUCCESS or FAIL (v2); v3 notifications are SUCCESS
	TradeState    string    `json:"trade_state,omitempty"`
	ErrCode       string    `json:"err_code,omitempty"`
	ErrCodeDes    string    `json:"err_code_des,omitempty"`
	PaidAt        time.Time `json:"paid_at"`
	ReceivedAt    time.Time `json:"received_at"`

	Kind      Kind   `json:"kind,omitempty"`
	EventType string `json:"event_type,omitempty"` // v3 event_type, e.g. TRANSACTION.SUCCESS
	// Refund is what a KindRefund notification says; WeChat's refund query
	// confirms it before anything counts.
	Refund *RefundFacts `json:"refund,omitempty"`
}

// Succeeded reports whether the notification claims a successful payment.
// A refund or other event never does.
func (n Notification) Succeeded() bool {
	return n.Kind == KindPayment && n.ResultCode == "SUCCESS" && (n.TradeState == "" || n.TradeState == TradeSuccess)
}

// RefundFacts are the facts of a refund notification (v3 REFUND.* resource,
// or v2 req_info), in WeChat's words mapped to RefundStatus: v2 CHANGE is
// ABNORMAL and REFUNDCLOSE is CLOSED.
type RefundFacts struct {
	OutRefundNo string       `json:"out_refund_no"`
	RefundID    string       `json:"refund_id"`
	Status      RefundStatus `json:"status"`
	AmountFen   int64        `json:"amount_fen"` // refunded (v3 amount.refund, v2 refund_fee)
	TotalFen    int64        `json:"total_fen"`  // the order's total (v3 amount.total, v2 total_fee)
	SuccessTime time.Time    `json:"success_time,omitzero"`
	// FromPortal: refund_request_source VENDOR_PLATFORM (v2), a refund made
	// in the merchant portal rather than through our API.
	FromPortal bool `json:"from_portal,omitempty"`
}

// Trade is WeChat's answer to an order query.
type Trade struct {
	OutTradeNo     string    `json:"out_trade_no"`
	TransactionID  string    `json:"transaction_id"`
	AppID          string    `json:"appid"`
	MchID          string    `json:"mch_id"`
	TradeState     string    `json:"trade_state"`
	TradeStateDesc string    `json:"trade_state_desc"`
	AmountFen      int64     `json:"amount_fen"`
	Currency       string    `json:"currency"`
	PaidAt         time.Time `json:"paid_at"`
}

// Order is the merchant's order as stored in PostgreSQL.
type Order struct {
	OutTradeNo    string     `json:"out_trade_no"`
	AmountFen     int64      `json:"amount_fen"`
	Currency      string     `json:"currency"`
	Description   string     `json:"description"`
	Status        Status     `json:"status"`
	TransactionID string     `json:"transaction_id"`
	PaidAt        *time.Time `json:"paid_at"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
	Logs          []Log      `json:"logs"`

	// Additions to the interface's order JSON.
	ExpiresAt *time.Time   `json:"expires_at,omitempty"` // closed if still unpaid then
	TradeType string       `json:"trade_type,omitempty"` // JSAPI or NATIVE when prepaid at WeChat
	OpenID    string       `json:"-"`                    // the JSAPI payer; personal data, never in responses
	CodeURL   string       `json:"code_url,omitempty"`   // NATIVE prepay: the QR code's content
	JSAPI     *JSAPIParams `json:"jsapi,omitempty"`      // JSAPI prepay: wx.requestPayment's arguments

	Notifications []NotificationRecord `json:"notifications"` // the audit trail, oldest first

	// Refunds (additions to the interface).
	RefundedFen int64    `json:"refunded_fen"` // sum of the SUCCESS refunds
	Refunds     []Refund `json:"refunds"`      // oldest first
	// PaidFen is what WeChat says was paid under TransactionID (it differs
	// from AmountFen only for an order in REVIEW for an amount mismatch);
	// refunds never add up to more.
	PaidFen int64 `json:"paid_fen,omitempty"`
}

// Log is one row of an order's history: a status change (from != to) or a
// recorded event that changed nothing (from == to).
type Log struct {
	FromStatus Status    `json:"from_status"`
	ToStatus   Status    `json:"to_status"`
	Remarks    string    `json:"remarks"`
	CreatedAt  time.Time `json:"created_at"`
}

// DefaultCurrency is the only currency WeChat Pay domestic merchants use.
const DefaultCurrency = "CNY"

var outTradeNoRE = regexp.MustCompile(`^[A-Za-z0-9_\-|*]{6,32}$`)

// ValidOutTradeNo reports whether s is a valid merchant order number:
// 6 to 32 of A-Z a-z 0-9 _ - | *.
func ValidOutTradeNo(s string) bool { return outTradeNoRE.MatchString(s) }

// Trade types the orchestrator prepays.
const (
	TradeTypeJSAPI  = "JSAPI"  // in-app / official account: needs the payer's openid
	TradeTypeNative = "NATIVE" // QR code: returns a code_url
)

// PrepayRequest asks WeChat to create the order on its side.
type PrepayRequest struct {
	OutTradeNo  string    `json:"out_trade_no"`
	Description string    `json:"description"`
	AmountFen   int64     `json:"amount_fen"`
	Currency    string    `json:"currency"`
	TradeType   string    `json:"trade_type"`
	OpenID      string    `json:"openid,omitempty"`
	NotifyURL   string    `json:"notify_url"`
	TimeExpire  time.Time `json:"time_expire"`
	ClientIP    string    `json:"client_ip,omitempty"` // v2 spbill_create_ip
}

// Prepay is what a client needs to pay: a NATIVE order's code_url, or a
// JSAPI order's signed wx.requestPayment parameters.
type Prepay struct {
	PrepayID string       `json:"prepay_id,omitempty"`
	CodeURL  string       `json:"code_url,omitempty"`
	JSAPI    *JSAPIParams `json:"jsapi,omitempty"`
}

// JSAPIParams are wx.requestPayment's arguments, signed for the front end.
type JSAPIParams struct {
	AppID     string `json:"appId"`
	TimeStamp string `json:"timeStamp"`
	NonceStr  string `json:"nonceStr"`
	Package   string `json:"package"`
	SignType  string `json:"signType"`
	PaySign   string `json:"paySign"`
}

// NotificationRecord is a verified notification as the audit trail keeps
// it: once per notification id, however often WeChat sent it.
type NotificationRecord struct {
	ID            string     `json:"id"`
	Version       Source     `json:"version"`
	TransactionID string     `json:"transaction_id"`
	AmountFen     int64      `json:"amount_fen"`
	ReceivedAt    time.Time  `json:"received_at"`
	ReceivedCount int        `json:"received_count"`
	Outcome       string     `json:"outcome"`
	InboxState    string     `json:"inbox_state,omitempty"` // pending or delivered, when it went through the inbox
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	// ExaminedAt is when the order's workflow examined the notification
	// (or, for a late copy of the payment the order is PAID by, when the
	// api recognised it); null until then.
	ExaminedAt *time.Time      `json:"examined_at"`
	Kind       Kind            `json:"kind,omitempty"`
	EventType  string          `json:"event_type,omitempty"`
	Content    json.RawMessage `json:"content"` // the verified notification
}

// RefundStatus is a refund's status, in WeChat's own words, plus FAILED.
type RefundStatus string

const (
	RefundProcessing RefundStatus = "PROCESSING" // accepted, not done
	RefundSuccess    RefundStatus = "SUCCESS"    // money returned; final
	RefundClosed     RefundStatus = "CLOSED"     // WeChat closed it: it failed; final
	RefundAbnormal   RefundStatus = "ABNORMAL"   // stuck (the payer's card was cancelled): needs a person, may still succeed
	RefundFailed     RefundStatus = "FAILED"     // WeChat refused the request; final
)

// Final reports whether the refund's status can no longer change.
func (s RefundStatus) Final() bool {
	return s == RefundSuccess || s == RefundClosed || s == RefundFailed
}

// Counts reports whether the refund's amount counts against what is left to
// refund: every refund that is not CLOSED or FAILED.
func (s RefundStatus) Counts() bool { return s != RefundClosed && s != RefundFailed }

// RefundSource says who started a refund.
type RefundSource string

const (
	RefundSourceAPI    RefundSource = "api"             // asked for through this service's API
	RefundSourcePortal RefundSource = "merchant_portal" // learnt from a notification or a bill
)

// Refund is a refund as stored here; its JSON is the interface's.
type Refund struct {
	OutRefundNo string       `json:"out_refund_no"`
	OutTradeNo  string       `json:"out_trade_no"`
	RefundID    string       `json:"refund_id"` // WeChat's; empty until WeChat gives one
	AmountFen   int64        `json:"amount_fen"`
	Status      RefundStatus `json:"status"`
	Reason      string       `json:"reason"`
	Source      RefundSource `json:"source"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	SuccessTime *time.Time   `json:"success_time"`
	// Addition: WeChat's reason for a FAILED refund, or what keeps one
	// ABNORMAL.
	Detail string `json:"detail,omitempty"`
}

var outRefundNoRE = regexp.MustCompile(`^[0-9A-Za-z_\-|*@]{1,64}$`)

// ValidOutRefundNo reports whether s is a valid merchant refund number:
// 1 to 64 of 0-9 A-Z a-z _ - | * @.
func ValidOutRefundNo(s string) bool { return outRefundNoRE.MatchString(s) }

// RefundRequest asks WeChat to refund part or all of a paid order.
type RefundRequest struct {
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	TotalFen    int64  `json:"total_fen"` // the order's paid amount
	Currency    string `json:"currency"`
	Reason      string `json:"reason,omitempty"`
	NotifyURL   string `json:"notify_url,omitempty"`
}

// RefundTrade is WeChat's answer about a refund (apply or query).
type RefundTrade struct {
	OutRefundNo   string       `json:"out_refund_no"`
	RefundID      string       `json:"refund_id"`
	OutTradeNo    string       `json:"out_trade_no"`
	TransactionID string       `json:"transaction_id"`
	Status        RefundStatus `json:"status"` // SUCCESS, CLOSED, PROCESSING or ABNORMAL
	AmountFen     int64        `json:"amount_fen"`
	TotalFen      int64        `json:"total_fen"`
	CreateTime    time.Time    `json:"create_time,omitzero"`
	SuccessTime   time.Time    `json:"success_time,omitzero"`
}
