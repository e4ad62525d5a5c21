// Package payment holds the domain types shared by the api, the workflow,
// the activities, the store and the WeChat Pay clients. It has no
// dependencies so that workflow code can use it without pulling in I/O.
package payment

import (
	"encoding/json"
	"regexp"
	"time"
)

// Status is an order's status, as fixed by the external contract.
type Status string

const (
	StatusPending Status = "PENDING" // created, not paid
	StatusPaid    Status = "PAID"    // WeChat's order query confirmed SUCCESS for the same amount
	StatusClosed  Status = "CLOSED"  // expired or closed unpaid
	StatusReview  Status = "REVIEW"  // money moved but something does not add up
)

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

// Notification is a verified payment notification, whatever its wire format.
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
}

// Succeeded reports whether the notification claims a successful payment.
func (n Notification) Succeeded() bool {
	return n.ResultCode == "SUCCESS" && (n.TradeState == "" || n.TradeState == TradeSuccess)
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

	// Additions to the contract's order JSON.
	ExpiresAt *time.Time   `json:"expires_at,omitempty"` // closed if still unpaid then
	TradeType string       `json:"trade_type,omitempty"` // JSAPI or NATIVE when prepaid at WeChat
	OpenID    string       `json:"-"`                    // the JSAPI payer; personal data, never in responses
	CodeURL   string       `json:"code_url,omitempty"`   // NATIVE prepay: the QR code's content
	JSAPI     *JSAPIParams `json:"jsapi,omitempty"`      // JSAPI prepay: wx.requestPayment's arguments

	Notifications []NotificationRecord `json:"notifications"` // the audit trail, oldest first
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
	ID            string          `json:"id"`
	Version       Source          `json:"version"`
	TransactionID string          `json:"transaction_id"`
	AmountFen     int64           `json:"amount_fen"`
	ReceivedAt    time.Time       `json:"received_at"`
	ReceivedCount int             `json:"received_count"`
	Outcome       string          `json:"outcome"`
	InboxState    string          `json:"inbox_state,omitempty"` // pending or delivered, when it went through the inbox
	DeliveredAt   *time.Time      `json:"delivered_at,omitempty"`
	Content       json.RawMessage `json:"content"` // the verified notification
}
