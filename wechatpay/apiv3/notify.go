package apiv3

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
)

// Window is how far Wechatpay-Timestamp may be from the receiver's clock,
// either way, for a notification to be accepted.
const Window = 5 * time.Minute

// API v3 header names.
const (
	headerV3Serial        = "Wechatpay-Serial"
	headerV3Signature     = "Wechatpay-Signature"
	headerV3Timestamp     = "Wechatpay-Timestamp"
	headerV3Nonce         = "Wechatpay-Nonce"
	headerV3SignatureType = "Wechatpay-Signature-Type"
)

// NotifyParser verifies and decrypts API v3 notifications and routes them
// by event_type. It does what the SDK's notify.Handler does, with the SDK's
// verifiers and utils.DecryptAES256GCM, but reads the time from an injected
// clock, and checks the merchant ids inside the parser. It implements
// wechatpay.NotificationParser, is safe for concurrent use, and never
// prints the APIv3 key.
type NotifyParser struct {
	appID, mchID string
	apiV3Key     string
	keys         *Keys
	now          func() time.Time
	window       time.Duration
}

// ParserConfig configures a NotifyParser.
type ParserConfig struct {
	AppID    string           // WECHATPAY_APPID: a payment must name it
	MchID    string           // WECHATPAY_MCHID: payments and refunds must name it
	APIv3Key string           // WECHATPAY_APIV3_KEY, 32 bytes: decrypts resources
	Keys     *Keys            // WeChat Pay's keys: verify signatures
	Now      func() time.Time // the clock of the timestamp window; time.Now when nil
}

// NewNotifyParser checks cfg and returns the parser.
func NewNotifyParser(cfg ParserConfig) (*NotifyParser, error) {
	switch {
	case cfg.AppID == "" || cfg.MchID == "":
		return nil, fmt.Errorf("%w: v3 notify parser needs the appid and mchid", wechatpay.ErrConfig)
	case len(cfg.APIv3Key) != 32:
		return nil, fmt.Errorf("%w: v3 notify parser: APIv3 key must be 32 bytes, not %d", wechatpay.ErrConfig, len(cfg.APIv3Key))
	case cfg.Keys == nil:
		return nil, fmt.Errorf("%w: v3 notify parser: no keys", wechatpay.ErrConfig)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &NotifyParser{appID: cfg.AppID, mchID: cfg.MchID, apiV3Key: cfg.APIv3Key, keys: cfg.Keys, now: now, window: Window}, nil
}

// Format keeps the APIv3 key out of every fmt verb.
func (p NotifyParser) Format(f fmt.State, _ rune) {
	_, _ = io.WriteString(f, "wechatpay.V3NotifyParser{apiV3Key: [redacted]}")
}

// envelope is the JSON body of an API v3 notification.
type envelope struct {
	ID           string    `json:"id"`
	CreateTime   string    `json:"create_time"`
	ResourceType string    `json:"resource_type"`
	EventType    string    `json:"event_type"`
	Summary      string    `json:"summary"`
	Resource     *resource `json:"resource"`
}

type resource struct {
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
	OriginalType   string `json:"original_type"`
}

// Event types and resource types the parser routes on.
const (
	EventTransactionSuccess = "TRANSACTION.SUCCESS"
	EventRefundSuccess      = "REFUND.SUCCESS"
	EventRefundAbnormal     = "REFUND.ABNORMAL"
	EventRefundClosed       = "REFUND.CLOSED"

	originalTransaction = "transaction"
	originalRefund      = "refund"
)

// refundEvents maps the refund event types to the status they announce.
var refundEvents = map[string]payment.RefundStatus{
	EventRefundSuccess:  payment.RefundSuccess,
	EventRefundAbnormal: payment.RefundAbnormal,
	EventRefundClosed:   payment.RefundClosed,
}

// Parse verifies an API v3 notification and returns it as a
// payment.Notification with Source v3, ID "v3:"+envelope id and EventType.
// In order:
//   - the headers Wechatpay-Serial, -Signature, -Timestamp and -Nonce are
//     required (wechatpay.ErrMalformed), and -Signature-Type, when present, must be
//     WECHATPAY2-SHA256-RSA2048 (wechatpay.ErrUnsupportedSignType);
//   - a probe signature (WECHATPAY/SIGNTEST/…) is wechatpay.ErrProbe;
//   - a timestamp more than Window from now() is wechatpay.ErrStaleTimestamp;
//   - a serial that names no key is wechatpay.ErrUnknownKey;
//   - the signature over "timestamp\nnonce\nbody\n" must verify (wechatpay.ErrBadSignature);
//   - the envelope must be JSON with an id and an event_type
//     (wechatpay.ErrMalformed);
//   - by event_type:
//   - TRANSACTION.SUCCESS: the resource must be a transaction
//     (original_type "transaction", else wechatpay.ErrMalformed), decrypt
//     (AEAD_AES_256_GCM, a 12-byte nonce; wechatpay.ErrDecrypt), name our
//     appid and mchid (wechatpay.ErrForeign) and hold a valid trade
//     (wechatpay.ErrMalformed). Kind payment; the only kind that can pay.
//   - REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED: the resource must be
//     a refund (original_type "refund"), decrypt, name our mchid (refunds
//     carry no appid) and hold a refund whose refund_status is the event's.
//     Kind refund, with RefundFacts.
//   - any other event type: Kind other; the resource is not read.
//
// For a payment, ResultCode is SUCCESS when trade_state is SUCCESS, else
// FAIL. Currency defaults to CNY; PaidAt is success_time. ReceivedAt is
// left for the caller, as for v2.
func (p *NotifyParser) Parse(header http.Header, body []byte) (payment.Notification, error) {
	var n payment.Notification
	h, err := readSignedHeaders(header)
	if err != nil {
		return n, err
	}
	if strings.HasPrefix(h.signature, ProbePrefix) {
		return n, fmt.Errorf("%w: Wechatpay-Signature %q", wechatpay.ErrProbe, wechatpay.Truncate(h.signature, 64))
	}
	ts, err := strconv.ParseInt(h.timestamp, 10, 64)
	if err != nil {
		return n, fmt.Errorf("%w: Wechatpay-Timestamp %q", wechatpay.ErrMalformed, wechatpay.Truncate(h.timestamp, 32))
	}
	if d := p.now().Sub(time.Unix(ts, 0)); d > p.window || d < -p.window {
		return n, fmt.Errorf("%w: Wechatpay-Timestamp %d is %s away", wechatpay.ErrStaleTimestamp, ts, d.Round(time.Second))
	}
	if !p.keys.Has(h.serial) {
		return n, fmt.Errorf("%w: Wechatpay-Serial %q", wechatpay.ErrUnknownKey, wechatpay.Truncate(h.serial, 64))
	}
	msg := NotifyMessage(h.timestamp, h.nonce, body)
	if err := p.keys.Verifier().Verify(context.Background(), h.serial, msg, h.signature); err != nil {
		if !errors.Is(err, wechatpay.ErrBadSignature) && !errors.Is(err, wechatpay.ErrUnknownKey) {
			err = fmt.Errorf("%w: %v", wechatpay.ErrBadSignature, err)
		}
		return n, fmt.Errorf("v3 notify: %w", err)
	}

	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return n, fmt.Errorf("%w: v3 notify envelope: %v", wechatpay.ErrMalformed, err)
	}
	if env.ID == "" || env.EventType == "" {
		return n, fmt.Errorf("%w: v3 notify envelope without id or event_type", wechatpay.ErrMalformed)
	}
	if status, refund := refundEvents[env.EventType]; refund {
		n, err = p.refund(env, status)
	} else if env.EventType == EventTransactionSuccess {
		n, err = p.payment(env)
	} else {
		n = payment.Notification{Kind: payment.KindOther, Source: payment.SourceV3}
	}
	if err != nil {
		return payment.Notification{}, err
	}
	n.ID, n.EventType = "v3:"+env.ID, env.EventType
	return n, nil
}

// payment reads the transaction of a TRANSACTION.SUCCESS event.
func (p *NotifyParser) payment(env envelope) (payment.Notification, error) {
	plain, err := p.decrypt(env, originalTransaction)
	if err != nil {
		return payment.Notification{}, err
	}
	n, err := transactionNotification(plain)
	if err != nil {
		return n, err
	}
	if n.AppID != p.appID || n.MchID != p.mchID {
		return payment.Notification{}, fmt.Errorf("%w: v3 transaction for appid %q mchid %q", wechatpay.ErrForeign,
			wechatpay.Truncate(n.AppID, 40), wechatpay.Truncate(n.MchID, 40))
	}
	return n, nil
}

// refund reads the refund of a REFUND.* event.
func (p *NotifyParser) refund(env envelope, status payment.RefundStatus) (payment.Notification, error) {
	plain, err := p.decrypt(env, originalRefund)
	if err != nil {
		return payment.Notification{}, err
	}
	n, err := refundNotification(plain, status)
	if err != nil {
		return n, err
	}
	if n.MchID != p.mchID {
		return payment.Notification{}, fmt.Errorf("%w: v3 refund for mchid %q", wechatpay.ErrForeign, wechatpay.Truncate(n.MchID, 40))
	}
	return n, nil
}

type signedHeaders struct{ serial, signature, timestamp, nonce string }

func readSignedHeaders(header http.Header) (signedHeaders, error) {
	var h signedHeaders
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{headerV3Serial, &h.serial},
		{headerV3Signature, &h.signature},
		{headerV3Timestamp, &h.timestamp},
		{headerV3Nonce, &h.nonce},
	} {
		*f.dst = strings.TrimSpace(header.Get(f.name))
		if *f.dst == "" {
			return h, fmt.Errorf("%w: missing header %s", wechatpay.ErrMalformed, f.name)
		}
	}
	if st := strings.TrimSpace(header.Get(headerV3SignatureType)); st != "" && st != SignatureType {
		return h, fmt.Errorf("%w: %s %q", wechatpay.ErrUnsupportedSignType, headerV3SignatureType, wechatpay.Truncate(st, 64))
	}
	return h, nil
}

// decrypt checks that the envelope's resource is of the original type the
// event announces and opens it. The nonce length is checked first: Go's
// GCM panics on any other length.
func (p *NotifyParser) decrypt(env envelope, originalType string) ([]byte, error) {
	r := env.Resource
	if r == nil {
		return nil, fmt.Errorf("%w: v3 notify envelope without resource", wechatpay.ErrMalformed)
	}
	if r.OriginalType != originalType {
		return nil, fmt.Errorf("%w: %s event with a resource of original_type %q", wechatpay.ErrMalformed,
			env.EventType, wechatpay.Truncate(r.OriginalType, 32))
	}
	if r.Algorithm != ResourceAlgorithm {
		return nil, fmt.Errorf("%w: resource algorithm %q", wechatpay.ErrMalformed, wechatpay.Truncate(r.Algorithm, 32))
	}
	if len(r.Nonce) != 12 {
		return nil, fmt.Errorf("%w: resource nonce of %d bytes, want 12", wechatpay.ErrMalformed, len(r.Nonce))
	}
	ct, err := base64.StdEncoding.DecodeString(r.Ciphertext)
	if err != nil || len(ct) < 16 {
		return nil, fmt.Errorf("%w: resource ciphertext is not base64 of at least 16 bytes", wechatpay.ErrMalformed)
	}
	plain, err := utils.DecryptAES256GCM(p.apiV3Key, r.AssociatedData, r.Nonce, r.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", wechatpay.ErrDecrypt, err)
	}
	return []byte(plain), nil
}

// refundResource is the decrypted resource of a REFUND.* notification. Its
// status field is refund_status (the SDK's refunddomestic.Refund reads
// "status" and finds nothing: wechatpay-go #93).
type refundResource struct {
	MchID               string `json:"mchid"`
	OutTradeNo          string `json:"out_trade_no"`
	TransactionID       string `json:"transaction_id"`
	OutRefundNo         string `json:"out_refund_no"`
	RefundID            string `json:"refund_id"`
	RefundStatus        string `json:"refund_status"`
	SuccessTime         string `json:"success_time"`
	UserReceivedAccount string `json:"user_received_account"`
	Amount              *struct {
		Total       *int64 `json:"total"`
		Refund      *int64 `json:"refund"`
		PayerTotal  *int64 `json:"payer_total"`
		PayerRefund *int64 `json:"payer_refund"`
	} `json:"amount"`
}

// refundNotification maps a decrypted refund to a notification (without
// ID and EventType). refund_status must be the one the event announces.
func refundNotification(plain []byte, status payment.RefundStatus) (payment.Notification, error) {
	var n payment.Notification
	var r refundResource
	if err := json.Unmarshal(plain, &r); err != nil {
		return n, fmt.Errorf("%w: v3 refund: %v", wechatpay.ErrMalformed, err)
	}
	switch {
	case r.MchID == "":
		return n, fmt.Errorf("%w: v3 refund without mchid", wechatpay.ErrMalformed)
	case !payment.ValidOutTradeNo(r.OutTradeNo):
		return n, fmt.Errorf("%w: v3 refund: invalid out_trade_no %q", wechatpay.ErrMalformed, wechatpay.Truncate(r.OutTradeNo, 40))
	case !payment.ValidOutRefundNo(r.OutRefundNo):
		return n, fmt.Errorf("%w: v3 refund: invalid out_refund_no %q", wechatpay.ErrMalformed, wechatpay.Truncate(r.OutRefundNo, 70))
	case r.TransactionID == "" || r.RefundID == "":
		return n, fmt.Errorf("%w: v3 refund without transaction_id or refund_id", wechatpay.ErrMalformed)
	case payment.RefundStatus(r.RefundStatus) != status:
		return n, fmt.Errorf("%w: v3 refund_status %q in a %s event", wechatpay.ErrMalformed, wechatpay.Truncate(r.RefundStatus, 32), status)
	case r.Amount == nil || r.Amount.Total == nil || r.Amount.Refund == nil || *r.Amount.Total <= 0 || *r.Amount.Refund <= 0:
		return n, fmt.Errorf("%w: v3 refund without positive amount.total and amount.refund", wechatpay.ErrMalformed)
	}
	facts := &payment.RefundFacts{OutRefundNo: r.OutRefundNo, RefundID: r.RefundID, Status: status,
		AmountFen: *r.Amount.Refund, TotalFen: *r.Amount.Total}
	if r.SuccessTime != "" {
		t, err := time.Parse(time.RFC3339, r.SuccessTime)
		if err != nil {
			return n, fmt.Errorf("%w: v3 refund success_time %q", wechatpay.ErrMalformed, wechatpay.Truncate(r.SuccessTime, 40))
		}
		facts.SuccessTime = t
	} else if status == payment.RefundSuccess {
		return n, fmt.Errorf("%w: v3 refund SUCCESS without success_time", wechatpay.ErrMalformed)
	}
	return payment.Notification{
		Kind:          payment.KindRefund,
		Source:        payment.SourceV3,
		OutTradeNo:    r.OutTradeNo,
		TransactionID: r.TransactionID,
		MchID:         r.MchID,
		Refund:        facts,
	}, nil
}

// transactionNotification maps a decrypted transaction to a notification (without ID).
func transactionNotification(plain []byte) (payment.Notification, error) {
	var n payment.Notification
	tx := new(payments.Transaction) // a pointer: the SDK's known trap is unmarshalling into a value
	if err := json.Unmarshal(plain, tx); err != nil {
		return n, fmt.Errorf("%w: v3 transaction: %v", wechatpay.ErrMalformed, err)
	}
	t, err := tradeOf(tx)
	if err != nil {
		return n, fmt.Errorf("%w: v3 transaction: %v", wechatpay.ErrMalformed, err)
	}
	if t.AppID == "" || t.MchID == "" {
		return n, fmt.Errorf("%w: v3 transaction without appid or mchid", wechatpay.ErrMalformed)
	}
	n = payment.Notification{
		Source:        payment.SourceV3,
		OutTradeNo:    t.OutTradeNo,
		TransactionID: t.TransactionID,
		AppID:         t.AppID,
		MchID:         t.MchID,
		AmountFen:     t.AmountFen,
		Currency:      t.Currency,
		ResultCode:    "FAIL",
		TradeState:    t.TradeState,
		PaidAt:        t.PaidAt,
	}
	if t.TradeState == payment.TradeSuccess {
		n.ResultCode = "SUCCESS"
	}
	return n, nil
}

// tradeOf checks and maps an SDK transaction, from a notification or an
// order query. Its errors are plain; callers wrap wechatpay.ErrMalformed.
func tradeOf(tx *payments.Transaction) (payment.Trade, error) {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	t := payment.Trade{
		OutTradeNo:     str(tx.OutTradeNo),
		TransactionID:  str(tx.TransactionId),
		AppID:          str(tx.Appid),
		MchID:          str(tx.Mchid),
		TradeState:     str(tx.TradeState),
		TradeStateDesc: str(tx.TradeStateDesc),
	}
	if !payment.ValidOutTradeNo(t.OutTradeNo) {
		return t, fmt.Errorf("invalid out_trade_no %q", wechatpay.Truncate(t.OutTradeNo, 40))
	}
	if t.TradeState == "" {
		return t, errors.New("missing trade_state")
	}
	success := t.TradeState == payment.TradeSuccess
	if success && t.TransactionID == "" {
		return t, errors.New("paid trade without transaction_id")
	}
	if a := tx.Amount; a != nil {
		if a.Total != nil {
			t.AmountFen = *a.Total
		}
		t.Currency = str(a.Currency)
	}
	if t.AmountFen < 0 || success && t.AmountFen == 0 {
		return t, fmt.Errorf("amount.total %d", t.AmountFen)
	}
	if t.Currency == "" {
		t.Currency = payment.DefaultCurrency
	}
	if s := str(tx.SuccessTime); s != "" {
		paid, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return t, fmt.Errorf("success_time %q", wechatpay.Truncate(s, 40))
		}
		t.PaidAt = paid
	}
	return t, nil
}

var _ wechatpay.NotificationParser = (*NotifyParser)(nil)
