package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// notifyV3 receives WeChat Pay's API v3 payment notification. It answers
// 204 only after the order's workflow holds the notification; failures are
// {"code":"FAIL","message":…} with 4xx (bad input) or 5xx (retry).
func (s *Server) notifyV3(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	n, status, reason := s.verifyV3(w, r)
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
		"version", "v3", "out_trade_no", n.OutTradeNo, "transaction_id", n.TransactionID, "notification_id", n.ID,
		"outcome", outcome, "status", status, "latency_ms", s.now().Sub(start).Milliseconds())
	if status == http.StatusOK {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, status, map[string]string{"code": "FAIL", "message": reason})
}

// verifyV3 reads the exact body bytes, verifies and decrypts. On failure it
// returns the HTTP status and a reason safe to send back.
func (s *Server) verifyV3(w http.ResponseWriter, r *http.Request) (payment.Notification, int, string) {
	if s.V3 == nil {
		return payment.Notification{}, http.StatusServiceUnavailable, "API v3 notifications are not configured"
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNotifyBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return payment.Notification{}, http.StatusRequestEntityTooLarge, "body too large"
		}
		return payment.Notification{}, http.StatusBadRequest, "unreadable body"
	}
	n, err := s.V3.Parse(r.Header, body)
	if err != nil {
		status, reason := v3Rejection(err)
		return payment.Notification{}, status, reason
	}
	if n.AppID != s.AppID || n.MchID != s.MchID {
		return payment.Notification{}, http.StatusForbidden, "appid or mchid is not this merchant's"
	}
	n.ReceivedAt = s.now().UTC()
	return n, http.StatusOK, ""
}

// v3Rejection maps the parser's errors to an answer, in one table.
func v3Rejection(err error) (int, string) {
	switch {
	case errors.Is(err, wechatpay.ErrProbe):
		return http.StatusUnauthorized, "probe signature"
	case errors.Is(err, wechatpay.ErrStaleTimestamp):
		return http.StatusUnauthorized, "timestamp outside the 5-minute window"
	case errors.Is(err, wechatpay.ErrUnknownKey):
		return http.StatusUnauthorized, "unknown Wechatpay-Serial"
	case errors.Is(err, wechatpay.ErrBadSignature):
		return http.StatusUnauthorized, "invalid signature"
	case errors.Is(err, wechatpay.ErrDecrypt):
		return http.StatusBadRequest, "resource could not be decrypted"
	case errors.Is(err, wechatpay.ErrUnsupportedSignType):
		return http.StatusBadRequest, "unsupported signature type"
	default:
		return http.StatusBadRequest, "malformed notification"
	}
}

// NewV3Parser builds the v3 notification parser from the configuration,
// or returns nil when API v3 is not configured.
func NewV3Parser(cfg config.Config, now func() time.Time) (*wechatpay.V3NotifyParser, error) {
	if !cfg.APIv3Key.Set() || (cfg.PublicKeyFile == "" && cfg.PlatformCertDir == "") {
		return nil, nil
	}
	keys, err := wechatpay.LoadV3Keys(cfg.PublicKeyFile, cfg.PublicKeyID, cfg.PlatformCertDir)
	if err != nil {
		return nil, fmt.Errorf("WeChat Pay keys: %w", err)
	}
	p, err := wechatpay.NewV3NotifyParser(cfg.APIv3Key.Reveal(), keys, now)
	if err != nil {
		return nil, errors.New("WECHATPAY_APIV3_KEY: not usable")
	}
	return p, nil
}
