package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/payflow/payflow/payment"
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
)

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

// receive runs one notification through verification and handoff, and
// records the decision: one log line and the metrics.
func (s *Server) receive(r *http.Request, version string, verify func() (payment.Notification, verdict)) (payment.Notification, verdict) {
	start := s.now()
	s.Metrics.NotificationReceived(version)
	n, v := verify()
	outcome := v.label
	if v.status == http.StatusOK {
		ctx, cancel := context.WithTimeout(r.Context(), handoffTimeout)
		defer cancel()
		var err error
		if outcome, err = s.Handoff.Accept(ctx, n); err != nil {
			s.Logger.Error("notification not recorded", "out_trade_no", n.OutTradeNo, "err", err)
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
		"version", version, "out_trade_no", n.OutTradeNo, "transaction_id", n.TransactionID, "notification_id", n.ID,
		"outcome", outcome, "status", v.status, "latency_ms", latency.Milliseconds())
	return n, v
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
