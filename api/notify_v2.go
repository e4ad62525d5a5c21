package api

import (
	"net/http"

	"github.com/payflow/payflow/wechatpay/apiv2"
)

// notifyV2 receives what WeChat Pay sends to the API v2 notify URL:
// payment results and refund results (req_info). It answers SUCCESS only
// once the notification is durably held (see receive).
func (s *Server) notifyV2(w http.ResponseWriter, r *http.Request) {
	v := s.receive(w, r, "v2", s.V2)
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(v.status)
	if v.status == http.StatusOK {
		_, _ = w.Write(apiv2.Reply(true, "OK"))
		return
	}
	_, _ = w.Write(apiv2.Reply(false, v.msg))
}
