package api

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// notifyV3 receives WeChat Pay's API v3 payment notification. It answers
// 204 only after the order's workflow holds the notification; failures are
// {"code":"FAIL","message":…} with 4xx (bad input) or 5xx (retry).
func (s *Server) notifyV3(w http.ResponseWriter, r *http.Request) {
	_, v := s.receive(r, "v3", func() (payment.Notification, verdict) { return s.verifyV3(w, r) })
	if v.status == http.StatusOK {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, v.status, map[string]string{"code": "FAIL", "message": v.msg})
}

// verifyV3 reads the exact body bytes, verifies and decrypts.
func (s *Server) verifyV3(w http.ResponseWriter, r *http.Request) (payment.Notification, verdict) {
	if s.V3 == nil {
		return payment.Notification{}, reject(http.StatusServiceUnavailable, reasonUnconfigured, "API v3 notifications are not configured")
	}
	body, v := readBody(w, r)
	if v.status != http.StatusOK {
		return payment.Notification{}, v
	}
	n, err := s.V3.Parse(r.Header, body)
	if err != nil {
		return payment.Notification{}, v3Rejection(err)
	}
	if n.AppID != s.AppID || n.MchID != s.MchID {
		return payment.Notification{}, reject(http.StatusForbidden, reasonForeign, "appid or mchid is not this merchant's")
	}
	n.ReceivedAt = s.now().UTC()
	return n, accepted
}

// v3Rejection maps the parser's errors to an answer, in one table.
func v3Rejection(err error) verdict {
	switch {
	case errors.Is(err, wechatpay.ErrProbe):
		return reject(http.StatusUnauthorized, reasonProbe, "probe signature")
	case errors.Is(err, wechatpay.ErrStaleTimestamp):
		return reject(http.StatusUnauthorized, reasonStale, "timestamp outside the 5-minute window")
	case errors.Is(err, wechatpay.ErrUnknownKey):
		return reject(http.StatusUnauthorized, reasonUnknownKey, "unknown Wechatpay-Serial")
	case errors.Is(err, wechatpay.ErrBadSignature):
		return reject(http.StatusUnauthorized, reasonSignature, "invalid signature")
	case errors.Is(err, wechatpay.ErrDecrypt):
		return reject(http.StatusBadRequest, reasonDecrypt, "resource could not be decrypted")
	case errors.Is(err, wechatpay.ErrUnsupportedSignType):
		return reject(http.StatusBadRequest, reasonMalformed, "unsupported signature type")
	default:
		return reject(http.StatusBadRequest, reasonMalformed, "malformed notification")
	}
}

// NewV3Parser builds the v3 notification parser from the configuration,
// or returns nil when API v3 is not configured.
func NewV3Parser(cfg config.Config, now func() time.Time) (*apiv3.NotifyParser, error) {
	if !cfg.APIv3Key.Set() || (cfg.PublicKeyFile == "" && cfg.PlatformCertDir == "") {
		return nil, nil
	}
	keys, err := apiv3.LoadKeys(cfg.PublicKeyFile, cfg.PublicKeyID, cfg.PlatformCertDir)
	if err != nil {
		return nil, fmt.Errorf("WeChat Pay keys: %w", err)
	}
	p, err := apiv3.NewNotifyParser(cfg.APIv3Key.Reveal(), keys, now)
	if err != nil {
		return nil, errors.New("WECHATPAY_APIV3_KEY: not usable")
	}
	return p, nil
}
