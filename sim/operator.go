package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// maxDuplicates bounds PayRequest.Duplicates.
const maxDuplicates = 100

// PayRequest is the body of POST /sim/pay: "the user paid".
type PayRequest struct {
	OutTradeNo      string `json:"out_trade_no"`
	AmountFen       int64  `json:"amount_fen"`        // required for a new trade; for a known (prepaid) one, the amount actually paid (default: its amount)
	SignType        string `json:"sign_type"`         // v2: MD5 or HMAC-SHA256; default the v2 prepay's sign_type, else MD5
	SignTypeField   string `json:"sign_type_field"`   // v2: "" (as WeChat: absent for HMAC-SHA256, present for some MD5 trades), "omit" or "include"
	Duplicates      int    `json:"duplicates"`        // extra copies of the notification
	Concurrent      bool   `json:"concurrent"`        // send all copies at once instead of back to back
	Tamper          string `json:"tamper"`            // "amount", "sign" or "appid": a forged notification
	ResultCode      string `json:"result_code"`       // SUCCESS (default) or FAIL: a failed payment
	QueryState      string `json:"query_state"`       // order queries answer this state…
	QueryStateTimes int    `json:"query_state_times"` // …for this many queries (0: always), then the real one
	QueryAmountFen  int64  `json:"query_amount_fen"`  // order queries report this amount instead
	TransactionID   string `json:"transaction_id"`    // generated when empty
	Version         string `json:"version"`           // v2 or v3: the notification's format (default: the prepay's API, else SIM_NOTIFY_VERSION)
	Drop            bool   `json:"drop"`              // send no notification for this payment (it can still be sent by /sim/trades/{no}/notify)
	PlatformKey     string `json:"platform_key"`      // v3: the id or certificate serial that signs (default: SIM_PLATFORM_KEY)
	Force           bool   `json:"force"`             // pay even a closed or expired trade ("paid after close")
	Probe           bool   `json:"probe"`             // v3: send a signature probe (WECHATPAY/SIGNTEST/…) before the notification
	// Faults are fault rules for this trade's calls and notification (their
	// out_trade_no is set to this trade's), added before it is paid.
	Faults []FaultRule `json:"faults"`
}

// PayResponse is the answer of POST /sim/pay.
type PayResponse struct {
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	TradeState    string `json:"trade_state"`
	Notification  string `json:"notification"` // "v2" or "v3": sent in that format; "dropped"; "none" (v3 sends none for a failed payment)
}

// NotifyResponse is the answer of POST /sim/trades/{out_trade_no}/notify.
type NotifyResponse struct {
	OutTradeNo string `json:"out_trade_no"`
	Delivery   int    `json:"delivery"` // the new delivery's id
}

// normalize fills defaults and checks the request.
func (p *PayRequest) normalize() error {
	if !payment.ValidOutTradeNo(p.OutTradeNo) {
		return errors.New("out_trade_no must be 6 to 32 of A-Z a-z 0-9 _ - | *")
	}
	if p.AmountFen < 0 || p.QueryAmountFen < 0 {
		return errors.New("amounts must be >= 0")
	}
	if p.SignType != "" && p.SignType != apiv2.SignTypeMD5 && p.SignType != apiv2.SignTypeHMACSHA256 {
		return errors.New("sign_type must be MD5 or HMAC-SHA256")
	}
	switch p.SignTypeField {
	case "", "omit", "include":
	default:
		return errors.New(`sign_type_field must be "", "omit" or "include"`)
	}
	if p.Duplicates < 0 || p.Duplicates > maxDuplicates {
		return fmt.Errorf("duplicates must be 0 to %d", maxDuplicates)
	}
	switch p.Tamper {
	case "", "amount", "sign", "appid":
	default:
		return errors.New(`tamper must be "", "amount", "sign" or "appid"`)
	}
	if p.ResultCode == "" {
		p.ResultCode = "SUCCESS"
	}
	if p.ResultCode != "SUCCESS" && p.ResultCode != "FAIL" {
		return errors.New("result_code must be SUCCESS or FAIL")
	}
	if _, ok := tradeStateDesc[p.QueryState]; p.QueryState != "" && !ok {
		return errors.New("query_state must be a WeChat trade state")
	}
	if p.QueryStateTimes < 0 {
		return errors.New("query_state_times must be >= 0")
	}
	switch p.Version {
	case "", "v2", "v3":
	default:
		return errors.New(`version must be "v2" or "v3"`)
	}
	if p.TransactionID != "" {
		if len(p.TransactionID) > 32 {
			return errors.New("transaction_id must be at most 32 characters")
		}
		for _, c := range p.TransactionID {
			if (c < '0' || c > '9') && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
				return errors.New("transaction_id must be letters and digits")
			}
		}
	}
	return nil
}

// handlePay serves POST /sim/pay.
func (s *Server) handlePay(w http.ResponseWriter, r *http.Request) {
	var req PayRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := req.normalize(); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if (req.Version == "v3" || req.PlatformKey != "") && s.v3 == nil {
		writeJSONError(w, http.StatusBadRequest, errNoV3KeysText+" (SIM_KEYS_DIR)")
		return
	}
	if req.PlatformKey != "" && s.v3.byID[req.PlatformKey] == nil {
		writeJSONError(w, http.StatusBadRequest, "platform_key must be one of "+strings.Join(s.v3.ids(), ", "))
		return
	}
	if len(req.Faults) > 0 {
		for i := range req.Faults {
			req.Faults[i].OutTradeNo = req.OutTradeNo
		}
		if _, err := s.faults.add(req.Faults); err != nil {
			writeJSONError(w, http.StatusBadRequest, "faults: "+err.Error())
			return
		}
	}
	f, err := s.trades.pay(req, s.now())
	if err != nil {
		status := http.StatusConflict
		if errors.Is(err, errBadRequest) {
			status = http.StatusBadRequest
		}
		writeJSONError(w, status, err.Error())
		return
	}
	version := req.Version
	if version == "" {
		version = f.Version
	}
	if version == "" {
		version = s.cfg.NotifyVersion
	}
	resp := PayResponse{OutTradeNo: f.OutTradeNo, TransactionID: f.TransactionID, TradeState: f.State, Notification: version}
	log := s.log.With("out_trade_no", f.OutTradeNo, "transaction_id", f.TransactionID, "amount_fen", f.AmountFen,
		"result_code", req.ResultCode, "version", version)
	if version == "v3" && req.ResultCode != "SUCCESS" { // WeChat notifies v3 merchants of successful payments only
		resp.Notification = "none"
		log.Info("user paid")
		writeJSON(w, http.StatusOK, resp)
		return
	}
	signType, withType := v2SignType(req, f)
	msg, err := s.formats[version].render(notice{facts: f, ResultCode: req.ResultCode, SignType: signType, WithSignType: withType,
		Tamper: req.Tamper, PlatformKey: req.PlatformKey})
	if err != nil {
		s.log.Error("render notification", "out_trade_no", f.OutTradeNo, "error", err)
		writeJSONError(w, http.StatusInternalServerError, "could not render the notification")
		return
	}
	msg.url = s.notifyURL(version, f)
	if req.Drop || s.cfg.DropNotifications {
		s.trades.recordDropped(f.OutTradeNo, msg)
		resp.Notification = "dropped"
		log.Info("user paid; notification dropped")
		writeJSON(w, http.StatusOK, resp)
		return
	}
	probe, copies, concurrent := req.Probe && version == "v3", 1+req.Duplicates, req.Concurrent
	if probe {
		s.faults.record(NotifyV3, FaultProbe)
	}
	if kind, ok := s.faults.pick(version+".notify", f.OutTradeNo); ok {
		switch kind {
		case FaultProbe:
			probe = true
		case FaultDuplicate: // as WeChat's servers do: copies within the same instant
			copies, concurrent = copies+1+s.faults.intN(2), true
		}
	}
	ds, err := s.trades.addDeliveries(f.OutTradeNo, msg, copies)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	log.Info("user paid", "sign_type", signType, "with_sign_type", withType, "tamper", req.Tamper, "platform_key", req.PlatformKey,
		"copies", len(ds), "concurrent", concurrent, "probe", probe, "notify_url", msg.url)
	writeJSON(w, http.StatusOK, resp)
	if probe {
		s.notifier.probeThenStart(f.OutTradeNo, msg, ds, concurrent)
		return
	}
	s.notifier.start(ds, concurrent)
}

// v2SignType is how a v2 notification is signed, as WeChat does it: with
// the sign_type of the trade's v2 prepay (else MD5, or what the operator
// names), and carrying a sign_type field only for some MD5 trades (chosen
// by out_trade_no, so a trade's copies agree): WeChat sends no sign_type in
// the notification of an HMAC-SHA256 order, and sign_type=MD5 in some MD5
// ones (digest §11.1).
func v2SignType(req PayRequest, f facts) (signType string, withField bool) {
	signType = req.SignType
	if signType == "" {
		signType = f.SignType
	}
	if signType == "" {
		signType = apiv2.SignTypeMD5
	}
	switch req.SignTypeField {
	case "include":
		return signType, true
	case "omit":
		return signType, false
	}
	return signType, signType == apiv2.SignTypeMD5 && md5CarriesSignType(f.OutTradeNo)
}

// md5CarriesSignType picks, deterministically, the MD5 trades whose
// notification carries sign_type=MD5: about half of them.
func md5CarriesSignType(outTradeNo string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(outTradeNo))
	return h.Sum32()%2 == 1
}

// notifyURL is where a notification in version goes: the notify_url of
// the trade's prepay when it was made in that version, else the
// configured URL of that version.
func (s *Server) notifyURL(version string, f facts) string {
	if f.NotifyURL != "" && f.Version == version {
		return f.NotifyURL
	}
	if version == "v3" {
		return s.cfg.NotifyURLV3
	}
	return s.cfg.NotifyURL
}

// handleRenotify serves POST /sim/trades/{out_trade_no}/notify: a new
// delivery of the trade's last notification, byte for byte.
func (s *Server) handleRenotify(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("out_trade_no")
	ds, err := s.trades.addDeliveries(no, nil, 1)
	switch {
	case errors.Is(err, errNoTrade):
		writeJSONError(w, http.StatusNotFound, "unknown trade")
		return
	case errors.Is(err, errNoNotice):
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, "internal error")
		return
	}
	s.log.Info("notification sent again", "out_trade_no", no, "delivery", ds[0].id)
	writeJSON(w, http.StatusAccepted, NotifyResponse{OutTradeNo: no, Delivery: ds[0].id})
	s.notifier.start(ds, false)
}

// handleTrade serves GET /sim/trades/{out_trade_no}.
func (s *Server) handleTrade(w http.ResponseWriter, r *http.Request) {
	v, ok := s.trades.view(r.PathValue("out_trade_no"))
	if !ok {
		writeJSONError(w, http.StatusNotFound, "unknown trade")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %v", err)
	}
	if dec.More() {
		return errors.New("bad JSON body: trailing data")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// nowFunc is the clock; tests may replace Server.now.
type nowFunc func() time.Time
