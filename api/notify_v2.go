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

// notifyV2 receives WeChat Pay's API v2 payment notification. It answers
// SUCCESS only after the order's workflow holds the notification.
func (s *Server) notifyV2(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	n, status, reason := s.verifyV2(w, r)
	outcome := reason
	if status == http.StatusOK {
		ctx, cancel := context.WithTimeout(r.Context(), handoffTimeout)
		defer cancel()
		var err error
		if outcome, err = s.handoff(ctx, n); err != nil {
			s.Logger.Error("notification not recorded", "out_trade_no", n.OutTradeNo, "err", err)
			status, reason, outcome = http.StatusServiceUnavailable, "could not record the notification, retry later", "unrecorded"
		}
	}
	s.Logger.Info("notification",
		"version", "v2", "out_trade_no", n.OutTradeNo, "transaction_id", n.TransactionID,
		"outcome", outcome, "status", status, "latency_ms", s.now().Sub(start).Milliseconds())
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	if status == http.StatusOK {
		_, _ = w.Write(wechatpay.V2Reply(true, "OK"))
		return
	}
	_, _ = w.Write(wechatpay.V2Reply(false, reason))
}

// verifyV2 reads, parses and verifies a v2 notification. On failure it
// returns the HTTP status and a reason safe to send back to the caller.
func (s *Server) verifyV2(w http.ResponseWriter, r *http.Request) (payment.Notification, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotifyBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return payment.Notification{}, http.StatusRequestEntityTooLarge, "body too large"
		}
		return payment.Notification{}, http.StatusBadRequest, "unreadable body"
	}
	params, err := wechatpay.DecodeV2XML(body)
	if err != nil {
		return payment.Notification{}, http.StatusBadRequest, "malformed XML"
	}
	if params["return_code"] != "SUCCESS" {
		return payment.Notification{}, http.StatusBadRequest, "return_code is not SUCCESS"
	}
	if !s.APIKey.Set() {
		return payment.Notification{}, http.StatusServiceUnavailable, "API v2 is not configured"
	}
	if err := wechatpay.VerifyV2(params, s.APIKey.Reveal()); err != nil {
		switch {
		case errors.Is(err, wechatpay.ErrMissingSign):
			return payment.Notification{}, http.StatusUnauthorized, "missing sign"
		case errors.Is(err, wechatpay.ErrUnsupportedSignType):
			return payment.Notification{}, http.StatusBadRequest, "unsupported sign_type"
		default:
			return payment.Notification{}, http.StatusUnauthorized, "invalid sign"
		}
	}
	if params["appid"] != s.AppID || params["mch_id"] != s.MchID {
		return payment.Notification{}, http.StatusForbidden, "appid or mch_id is not this merchant's"
	}
	n, err := wechatpay.V2Notification(params)
	if err != nil {
		return payment.Notification{}, http.StatusBadRequest, "malformed notification"
	}
	n.ReceivedAt = s.now().UTC()
	return n, http.StatusOK, ""
}
