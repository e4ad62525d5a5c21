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

// NotifyParser verifies and decrypts API v3 payment notifications. It
// does what the SDK's notify.Handler does, with the SDK's verifiers and
// utils.DecryptAES256GCM, but reads the time from an injected clock. It is
// safe for concurrent use. Formatting it never prints the APIv3 key.
type NotifyParser struct {
	apiV3Key string
	keys     *Keys
	now      func() time.Time
	window   time.Duration
}

// NewNotifyParser returns a parser that decrypts with apiV3Key (32 bytes),
// verifies with keys and checks timestamps against now (time.Now when nil).
func NewNotifyParser(apiV3Key string, keys *Keys, now func() time.Time) (*NotifyParser, error) {
	if len(apiV3Key) != 32 {
		return nil, fmt.Errorf("wechatpay: v3 notify parser: APIv3 key must be 32 bytes, not %d", len(apiV3Key))
	}
	if keys == nil {
		return nil, errors.New("wechatpay: v3 notify parser: no keys")
	}
	if now == nil {
		now = time.Now
	}
	return &NotifyParser{apiV3Key: apiV3Key, keys: keys, now: now, window: Window}, nil
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

// Parse verifies an API v3 payment notification and returns it as a
// payment.Notification with Source v3 and ID "v3:"+envelope id. In order:
//   - the headers Wechatpay-Serial, -Signature, -Timestamp and -Nonce are
//     required (wechatpay.ErrMalformed), and -Signature-Type, when present, must be
//     WECHATPAY2-SHA256-RSA2048 (wechatpay.ErrUnsupportedSignType);
//   - a probe signature (WECHATPAY/SIGNTEST/…) is wechatpay.ErrProbe;
//   - a timestamp more than Window from now() is wechatpay.ErrStaleTimestamp;
//   - a serial that names no key is wechatpay.ErrUnknownKey;
//   - the signature over "timestamp\nnonce\nbody\n" must verify (wechatpay.ErrBadSignature);
//   - the envelope must be JSON with id and resource, algorithm
//     AEAD_AES_256_GCM and a 12-byte nonce (wechatpay.ErrMalformed);
//   - the resource must decrypt (wechatpay.ErrDecrypt);
//   - the transaction must hold a valid out_trade_no, appid, mchid and
//     trade_state, and when trade_state is SUCCESS also transaction_id and
//     amount.total > 0 (wechatpay.ErrMalformed).
//
// ResultCode is SUCCESS when trade_state is SUCCESS, else FAIL, whatever the
// event_type. Currency defaults to CNY; PaidAt is success_time. ReceivedAt is
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
	plain, err := p.decrypt(env)
	if err != nil {
		return n, err
	}
	n, err = transactionNotification(plain)
	if err != nil {
		return n, err
	}
	n.ID = "v3:" + env.ID
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

// decrypt checks the envelope and opens its resource. The nonce length is
// checked first: Go's GCM panics on any other length.
func (p *NotifyParser) decrypt(env envelope) ([]byte, error) {
	if env.ID == "" {
		return nil, fmt.Errorf("%w: v3 notify envelope without id", wechatpay.ErrMalformed)
	}
	r := env.Resource
	if r == nil {
		return nil, fmt.Errorf("%w: v3 notify envelope without resource", wechatpay.ErrMalformed)
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
