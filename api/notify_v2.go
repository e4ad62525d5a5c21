package api

import (
	"net/http"

	"github.com/payflow/payflow/wechatpay/apiv2"
)

// notifyV2 receives what WeChat Pay sends to the API v2 notify URL:
// payment results and refund results (req_info). It answers SUCCESS only
// once the notification is durably held (see receive).
//
// A v3 notification sent here (its Wechatpay-Signature header says so) is
// handled as one: refunds are asked with API v3, and their notify_url
// defaults to WECHATPAY_NOTIFY_URL, which may be this v2 path.
func (s *Server) notifyV2(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Wechatpay-Signature") != "" {
		s.notifyV3(w, r)
		return
	}
	v := s.receive(w, r, "v2", s.V2)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(v.status)
	if v.status == http.StatusOK {
		_, _ = w.Write(apiv2.Reply(true, "OK"))
		return
	}
	_, _ = w.Write(apiv2.Reply(false, v.msg))
}
