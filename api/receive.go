package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// maxNotifyBody caps a notification's size: real ones are about 1 KiB.
const maxNotifyBody = 64 << 10

// handoffTimeout keeps the answer inside WeChat's 5 s limit; past it WeChat
// counts the delivery as failed anyway and retries.
const handoffTimeout = 4 * time.Second

// Rejection reasons, the metric labels of notifications not acknowledged.
const (
	reasonSignature    = "signature"
	reasonStale        = "stale"
	reasonProbe        = "probe"
	reasonUnknownKey   = "unknown_key"
	reasonForeign      = "foreign_id"
	reasonMalformed    = "malformed"
	reasonDecrypt      = "decrypt"
	reasonUnrecorded   = "unrecorded"
	reasonUnconfigured = "unconfigured"
	reasonOverloaded   = "overloaded"
)

// OutcomeIgnored (payment.NotifyIgnored) is the outcome of a verified
// notification of an event
// type this service does not handle (v3 KindOther): kept in the audit
// trail, counted, acknowledged, handed to no workflow.
const OutcomeIgnored = payment.NotifyIgnored

// verdict is what a notification gets: an HTTP status, a reason label for
// metrics and logs, and a message safe to send back to WeChat.
type verdict struct {
	status int
	label  string
	msg    string
}

var accepted = verdict{status: http.StatusOK}

func reject(status int, label, msg string) verdict {
	return verdict{status: status, label: label, msg: msg}
}

// rejections maps the parsers' errors to answers, in one table, first
// match wins: bad input is 4xx (WeChat's retries would not help, and a
// forger learns nothing but "no"); only "could not record" is 5xx.
var rejections = []struct {
	err error
	v   verdict
}{
	{wechatpay.ErrProbe, reject(http.StatusUnauthorized, reasonProbe, "probe signature")},
	{wechatpay.ErrStaleTimestamp, reject(http.StatusUnauthorized, reasonStale, "timestamp outside the 5-minute window")},
	{wechatpay.ErrUnknownKey, reject(http.StatusUnauthorized, reasonUnknownKey, "unknown Wechatpay-Serial")},
	{wechatpay.ErrMissingSign, reject(http.StatusUnauthorized, reasonSignature, "missing sign")},
	{wechatpay.ErrBadSignature, reject(http.StatusUnauthorized, reasonSignature, "invalid signature")},
	{wechatpay.ErrUnsupportedSignType, reject(http.StatusBadRequest, reasonMalformed, "unsupported signature type")},
	{wechatpay.ErrDecrypt, reject(http.StatusBadRequest, reasonDecrypt, "could not be decrypted with this merchant's key")},
	{wechatpay.ErrForeign, reject(http.StatusForbidden, reasonForeign, "appid or mch_id is not this merchant's")},
	{wechatpay.ErrMalformed, reject(http.StatusBadRequest, reasonMalformed, "malformed notification")},
}

// rejection is the answer to a parser's error.
func rejection(err error) verdict {
	for _, r := range rejections {
		if errors.Is(err, r.err) {
			return r.v
		}
	}
	return reject(http.StatusBadRequest, reasonMalformed, "malformed notification")
}

// receive runs one notification through its parser and makes it durable,
// and records the decision: one log line and the metrics. A payment or a
// refund is handed to its order's workflow (Handoff.Accept); any other
// verified event (KindOther) is only kept in the audit trail. Either is
// acknowledged only once recorded; otherwise the answer is 503 and WeChat
// sends it again.
func (s *Server) receive(w http.ResponseWriter, r *http.Request, version string, parser wechatpay.NotificationParser) verdict {
	start := s.now()
	s.Metrics.NotificationReceived(version)
	// Shed before any work, when the workers are behind (Backpressure) or
	// too many hand-overs are in flight: WeChat sends it again (15 s
	// later, then for a day), by when they have caught up.
	if s.Backpressure.Shedding() || !s.notifySlots.acquire() {
		v := reject(http.StatusServiceUnavailable, reasonOverloaded, "busy, retry later")
		s.Metrics.NotificationRejected(version, v.label, s.now().Sub(start))
		return v
	}
	defer s.notifySlots.release()
	n, v := s.parse(w, r, parser)
	outcome := v.label
	if v.status == http.StatusOK {
		ctx, cancel := context.WithTimeout(r.Context(), handoffTimeout)
		defer cancel()
		var (
			err error
			how payment.NotificationOutcome
		)
		if n.Kind == payment.KindOther {
			// Nothing for a workflow to examine: kept, examined by being kept.
			how, err = OutcomeIgnored, s.Orders.AuditExamined(ctx, n, OutcomeIgnored)
		} else {
			how, err = s.Handoff.Accept(ctx, n)
		}
		outcome = string(how)
		if err != nil {
			s.Logger.Error("notification not recorded", "out_trade_no", n.OutTradeNo, "kind", string(n.Kind), "err", err)
			v = reject(http.StatusServiceUnavailable, reasonUnrecorded, "could not record the notification, retry later")
			outcome = v.label
		}
	}
	latency := s.now().Sub(start)
	if v.status == http.StatusOK {
		s.Metrics.NotificationAcked(version, outcome, latency)
	} else {
		s.Metrics.NotificationRejected(version, v.label, latency)
	}
	s.Logger.Info("notification",
		"version", version, "kind", kindLabel(n.Kind), "event_type", n.EventType,
		"out_trade_no", n.OutTradeNo, "transaction_id", n.TransactionID, "notification_id", n.ID,
		"outcome", outcome, "status", v.status, "latency_ms", latency.Milliseconds())
	return v
}

// parse reads the exact body bytes and runs the parser.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, parser wechatpay.NotificationParser) (payment.Notification, verdict) {
	if parser == nil {
		return payment.Notification{}, reject(http.StatusServiceUnavailable, reasonUnconfigured, "this API version is not configured")
	}
	body, v := readBody(w, r)
	if v.status != http.StatusOK {
		return payment.Notification{}, v
	}
	n, err := parser.Parse(r.Header, body)
	if err != nil {
		return payment.Notification{}, rejection(err)
	}
	n.ReceivedAt = s.now().UTC()
	return n, accepted
}

// kindLabel names a notification's kind in logs ("" is a payment).
func kindLabel(k payment.Kind) string {
	if k == payment.KindPayment {
		return "payment"
	}
	return string(k)
}

// readBody reads the exact body bytes, size-limited.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, verdict) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotifyBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, reject(http.StatusRequestEntityTooLarge, reasonMalformed, "body too large")
		}
		return nil, reject(http.StatusBadRequest, reasonMalformed, "unreadable body")
	}
	return body, accepted
}
