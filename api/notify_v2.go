package api

import (
	"errors"
	"net/http"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// notifyV2 receives WeChat Pay's API v2 payment notification. It answers
// SUCCESS only after the order's workflow holds the notification.
func (s *Server) notifyV2(w http.ResponseWriter, r *http.Request) {
	_, v := s.receive(r, "v2", func() (payment.Notification, verdict) { return s.verifyV2(w, r) })
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(v.status)
	if v.status == http.StatusOK {
		_, _ = w.Write(apiv2.Reply(true, "OK"))
		return
	}
	_, _ = w.Write(apiv2.Reply(false, v.msg))
}

// verifyV2 reads, parses and verifies a v2 notification.
func (s *Server) verifyV2(w http.ResponseWriter, r *http.Request) (payment.Notification, verdict) {
	body, v := readBody(w, r)
	if v.status != http.StatusOK {
		return payment.Notification{}, v
	}
	params, err := apiv2.DecodeXML(body)
	if err != nil {
		return payment.Notification{}, reject(http.StatusBadRequest, reasonMalformed, "malformed XML")
	}
	if params["return_code"] != "SUCCESS" {
		return payment.Notification{}, reject(http.StatusBadRequest, reasonMalformed, "return_code is not SUCCESS")
	}
	if !s.APIKey.Set() {
		return payment.Notification{}, reject(http.StatusServiceUnavailable, reasonUnconfigured, "API v2 is not configured")
	}
	if err := apiv2.Verify(params, s.APIKey.Reveal()); err != nil {
		switch {
		case errors.Is(err, wechatpay.ErrMissingSign):
			return payment.Notification{}, reject(http.StatusUnauthorized, reasonSignature, "missing sign")
		case errors.Is(err, wechatpay.ErrUnsupportedSignType):
			return payment.Notification{}, reject(http.StatusBadRequest, reasonMalformed, "unsupported sign_type")
		default:
			return payment.Notification{}, reject(http.StatusUnauthorized, reasonSignature, "invalid sign")
		}
	}
	if params["appid"] != s.AppID || params["mch_id"] != s.MchID {
		return payment.Notification{}, reject(http.StatusForbidden, reasonForeign, "appid or mch_id is not this merchant's")
	}
	n, err := apiv2.PaymentNotification(params)
	if err != nil {
		return payment.Notification{}, reject(http.StatusBadRequest, reasonMalformed, "malformed notification")
	}
	n.ReceivedAt = s.now().UTC()
	return n, accepted
}
