package api

import (
	"net/http"
)

// notifyV3 receives WeChat Pay's API v3 notifications, of every event
// type. It answers 204 only once the notification is durably held (see
// receive); failures are {"code":"FAIL","message":…} with 4xx (bad input)
// or 5xx (retry).
func (s *Server) notifyV3(w http.ResponseWriter, r *http.Request) {
	v := s.receive(w, r, "v3", s.V3)
	if v.status == http.StatusOK {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, v.status, map[string]string{"code": "FAIL", "message": v.msg})
}
