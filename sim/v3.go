package sim

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
)

// API v3 constants.
const (
	v3AuthScheme    = "WECHATPAY2-SHA256-RSA2048" // Authorization scheme and Wechatpay-Signature-Type
	v3Algorithm     = "AEAD_AES_256_GCM"
	v3AssociatedTx  = "transaction"
	v3Window        = 5 * time.Minute // accepted distance of a request's timestamp
	maxV3Request    = 64 << 10
	errNoV3KeysText = "sandbox has no v3 keys configured"
)

// beijing is WeChat Pay's time zone.
var beijing = time.FixedZone("CST", 8*3600)

// v3Error is the body of every API v3 error answer.
type v3Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// v3Answer is what a v3 handler answers: a status and a JSON body, or no
// body when v is nil.
type v3Answer struct {
	status int
	v      any
}

func v3Fail(status int, code, msg string) v3Answer {
	return v3Answer{status, v3Error{Code: code, Message: msg}}
}

func v3ParamError(msg string) v3Answer { return v3Fail(http.StatusBadRequest, "PARAM_ERROR", msg) }

// v3Transaction is a transaction as the v3 order query answers it and as a
// v3 notification's resource holds it.
type v3Transaction struct {
	AppID          string   `json:"appid"`
	MchID          string   `json:"mchid"`
	OutTradeNo     string   `json:"out_trade_no"`
	TransactionID  string   `json:"transaction_id,omitempty"`
	TradeType      string   `json:"trade_type,omitempty"`
	TradeState     string   `json:"trade_state"`
	TradeStateDesc string   `json:"trade_state_desc"`
	BankType       string   `json:"bank_type,omitempty"`
	Attach         string   `json:"attach"`
	SuccessTime    string   `json:"success_time,omitempty"`
	Payer          *v3Payer `json:"payer,omitempty"`
	Amount         v3Amount `json:"amount"`
}

type v3Payer struct {
	OpenID string `json:"openid"`
}

type v3Amount struct {
	Total         int64  `json:"total"`
	PayerTotal    *int64 `json:"payer_total,omitempty"`
	Currency      string `json:"currency"`
	PayerCurrency string `json:"payer_currency"`
}

// v3Tx renders f. Fields only a paid trade has (transaction_id, trade_type,
// bank_type, success_time, payer, payer_total) are left out otherwise, as
// WeChat does for NOTPAY and CLOSED.
func v3Tx(appID, mchID string, f facts) v3Transaction {
	tx := v3Transaction{
		AppID: appID, MchID: mchID, OutTradeNo: f.OutTradeNo,
		TradeState: f.State, TradeStateDesc: tradeStateDesc[f.State], Attach: f.Attach,
		Amount: v3Amount{Total: f.AmountFen, Currency: payment.DefaultCurrency, PayerCurrency: payment.DefaultCurrency},
	}
	if f.State == payment.TradeSuccess || f.State == payment.TradeRefund {
		total := f.AmountFen
		tx.TransactionID, tx.TradeType, tx.BankType = f.TransactionID, f.TradeType, "OTHERS"
		if !f.TimeEnd.IsZero() {
			tx.SuccessTime = f.TimeEnd.In(beijing).Format(time.RFC3339)
		}
		tx.Payer = &v3Payer{OpenID: f.OpenID}
		tx.Amount.PayerTotal = &total
	}
	return tx
}

// marshalJSON is json.Marshal without HTML escaping, as WeChat writes.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// v3Signed returns the Wechatpay-* headers of body signed by ident now.
func v3Signed(ident *identity, now time.Time, body []byte) (http.Header, error) {
	ts := strconv.FormatInt(now.Unix(), 10)
	nonce := strings.ToUpper(newNonce())
	sig, err := utils.SignSHA256WithRSA(ts+"\n"+nonce+"\n"+string(body)+"\n", ident.key)
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", ident.id, err)
	}
	return http.Header{
		"Wechatpay-Serial":    {ident.id},
		"Wechatpay-Signature": {sig},
		"Wechatpay-Timestamp": {ts},
		"Wechatpay-Nonce":     {nonce},
	}, nil
}

// encryptResource encrypts plaintext as WeChat encrypts a notification
// resource (AES-256-GCM, base64 of ciphertext and tag).
func encryptResource(apiV3Key, nonce, associatedData string, plaintext []byte) (string, error) {
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return "", errors.New("APIv3 key is not a valid AES key")
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))), nil
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// v3Envelope is the JSON body of a v3 notification, fields in WeChat's order.
type v3Envelope struct {
	ID           string     `json:"id"`
	CreateTime   string     `json:"create_time"`
	ResourceType string     `json:"resource_type"`
	EventType    string     `json:"event_type"`
	Summary      string     `json:"summary"`
	Resource     v3Resource `json:"resource"`
}

type v3Resource struct {
	OriginalType   string `json:"original_type"`
	Algorithm      string `json:"algorithm"`
	Ciphertext     string `json:"ciphertext"`
	AssociatedData string `json:"associated_data"`
	Nonce          string `json:"nonce"`
}

// v3Format renders API v3 notifications: TRANSACTION.SUCCESS envelopes
// whose resource is the transaction encrypted with the APIv3 key, signed
// by the chosen identity at each attempt.
type v3Format struct {
	appID, mchID string
	keys         *v3Keys
	now          func() time.Time
}

func (f v3Format) render(n notice) (*message, error) {
	ident := f.keys.pick(n.PlatformKey)
	tx := v3Tx(f.appID, f.mchID, n.facts)
	if n.Tamper == "appid" {
		tx.AppID = foreignAppID
	}
	env := v3Envelope{
		ID:           newUUID(),
		CreateTime:   f.now().In(beijing).Format(time.RFC3339),
		ResourceType: "encrypt-resource",
		EventType:    "TRANSACTION.SUCCESS",
		Summary:      "支付成功",
		Resource:     v3Resource{OriginalType: "transaction", Algorithm: v3Algorithm, AssociatedData: v3AssociatedTx},
	}
	envelope := func(tx v3Transaction) ([]byte, error) {
		plain, err := marshalJSON(tx)
		if err != nil {
			return nil, err
		}
		env.Resource.Nonce = randomAlnum(12)
		if env.Resource.Ciphertext, err = encryptResource(f.keys.apiV3Key, env.Resource.Nonce, v3AssociatedTx, plain); err != nil {
			return nil, fmt.Errorf("encrypt resource: %w", err)
		}
		return marshalJSON(env)
	}
	signed, err := envelope(tx)
	if err != nil {
		return nil, err
	}
	body := signed
	if n.Tamper == "amount" { // sent with another amount than was signed
		tx.Amount.Total++
		if tx.Amount.PayerTotal != nil {
			more := *tx.Amount.PayerTotal + 1
			tx.Amount.PayerTotal = &more
		}
		if body, err = envelope(tx); err != nil {
			return nil, err
		}
	}
	tamperSign := n.Tamper == "sign"
	return &message{
		api:    "v3",
		header: http.Header{"Content-Type": {"application/json"}},
		sign: func() (http.Header, error) {
			h, err := v3Signed(ident, f.now(), signed)
			if err != nil {
				return nil, err
			}
			if tamperSign {
				h.Set("Wechatpay-Signature", corrupt(h.Get("Wechatpay-Signature")))
			}
			h.Set("Wechatpay-Signature-Type", v3AuthScheme)
			return h, nil
		},
		body:     body,
		accepted: v3Accepted,
	}, nil
}

// v3Accepted is WeChat's rule for a v3 notification reply: HTTP 200 or
// 204, whatever the body.
func v3Accepted(status int, _ []byte) (bool, string) {
	if status == http.StatusOK || status == http.StatusNoContent {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP status %d", status)
}

// v3Handler serves one API v3 call: it answers 500 when the simulator has
// no v3 keys, verifies the merchant's Authorization (401 SIGN_ERROR), and
// signs whatever h answers with the identity the request's
// Wechatpay-Serial names, or the default one.
func (s *Server) v3Handler(op string, h func(r *http.Request, body []byte) v3Answer) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.v3 == nil {
			writeJSON(w, http.StatusInternalServerError, v3Error{Code: "SYSTEM_ERROR", Message: errNoV3KeysText})
			return
		}
		body, err := readBody(w, r, maxV3Request)
		var a v3Answer
		switch {
		case err != nil:
			a = v3ParamError("request body too large or unreadable")
		default:
			if a = s.verifyV3Request(r, body); a.status == 0 {
				a = h(r, body)
			}
		}
		s.log.Info("v3 call", "api", "v3", "op", op, "path", r.URL.Path, "http_status", a.status)
		s.writeV3(w, r, a)
	}
}

// writeV3 writes a signed API v3 answer.
func (s *Server) writeV3(w http.ResponseWriter, r *http.Request, a v3Answer) {
	var body []byte
	if a.v != nil {
		var err error
		if body, err = marshalJSON(a.v); err != nil {
			s.log.Error("encode v3 answer", "error", err)
			a, body = v3Answer{status: http.StatusInternalServerError}, []byte(`{"code":"SYSTEM_ERROR","message":"系统错误"}`)
		}
	}
	h, err := v3Signed(s.v3.pick(r.Header.Get("Wechatpay-Serial")), s.now(), body)
	if err != nil {
		s.log.Error("sign v3 answer", "error", err)
		writeJSON(w, http.StatusInternalServerError, v3Error{Code: "SYSTEM_ERROR", Message: "系统错误"})
		return
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.Header().Set("Request-ID", strings.ToUpper(randomHex(16)))
	if len(body) > 0 {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(body)
}

// verifyV3Request checks the merchant's Authorization header: scheme,
// mchid, serial_no, timestamp window and the SHA256withRSA signature over
// "METHOD\nURI\nTIMESTAMP\nNONCE\nBODY\n" with the merchant certificate.
// It returns a zero answer when the request is authentic.
func (s *Server) verifyV3Request(r *http.Request, body []byte) v3Answer {
	fail := func(field, issue string, extra map[string]any) v3Answer {
		detail := map[string]any{"field": field, "location": "authorization", "issue": issue}
		for k, v := range extra {
			detail[k] = v
		}
		return v3Answer{http.StatusUnauthorized, v3Error{Code: "SIGN_ERROR", Message: "签名错误，请检查后再试", Detail: detail}}
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if scheme != v3AuthScheme {
		return fail("authorization", "Authorization is missing or its scheme is not "+v3AuthScheme, nil)
	}
	p := make(map[string]string)
	for _, item := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return fail("authorization", "Authorization items must be key=\"value\"", nil)
		}
		p[k] = v[1 : len(v)-1]
	}
	for _, k := range []string{"mchid", "nonce_str", "timestamp", "serial_no", "signature"} {
		if p[k] == "" {
			return fail(k, "missing "+k, nil)
		}
	}
	if p["mchid"] != s.cfg.MchID {
		return fail("mchid", "mchid is not this merchant", nil)
	}
	if !strings.EqualFold(p["serial_no"], s.v3.mchSerial) {
		return fail("serial_no", "serial_no is not the merchant certificate serial", nil)
	}
	ts, err := strconv.ParseInt(p["timestamp"], 10, 64)
	if err != nil {
		return fail("timestamp", "timestamp is not an integer", nil)
	}
	if d := s.now().Sub(time.Unix(ts, 0)); d > v3Window || d < -v3Window {
		return fail("timestamp", "timestamp is more than 5 minutes away", nil)
	}
	msg := r.Method + "\n" + r.RequestURI + "\n" + p["timestamp"] + "\n" + p["nonce_str"] + "\n" + string(body) + "\n"
	sig, err := base64.StdEncoding.DecodeString(p["signature"])
	sum := sha256.Sum256([]byte(msg))
	if err != nil || rsa.VerifyPKCS1v15(s.v3.mchPub, crypto.SHA256, sum[:], sig) != nil {
		shown := msg
		if len(shown) > 256 {
			shown = shown[:256]
			for !utf8.ValidString(shown) {
				shown = shown[:len(shown)-1]
			}
		}
		return fail("signature", "sign not match", map[string]any{"sign_information": map[string]any{
			"method": r.Method, "url": r.RequestURI, "sign_message_length": len(msg), "truncated_sign_message": shown,
		}})
	}
	return v3Answer{}
}

// handleV3Query serves GET /v3/pay/transactions/out-trade-no/{out_trade_no}
// and …/id/{transaction_id}. USERPAYING is answered as 200 with that
// trade_state (WeChat may also answer 202).
func (s *Server) handleV3Query(byTxn bool) func(r *http.Request, _ []byte) v3Answer {
	return func(r *http.Request, _ []byte) v3Answer {
		if mchID := r.URL.Query().Get("mchid"); mchID != s.cfg.MchID {
			return v3ParamError("mchid must be this merchant's id")
		}
		no, txn := r.PathValue("out_trade_no"), ""
		if byTxn {
			no, txn = "", r.PathValue("transaction_id")
		}
		f, ok := s.trades.query(no, txn)
		if !ok {
			return v3Fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
		}
		return v3Answer{http.StatusOK, v3Tx(s.cfg.AppID, s.cfg.MchID, f)}
	}
}

// v3PrepayRequest is the body of POST /v3/pay/transactions/{jsapi,native}.
// Fields the simulator does not use (scene_info, detail, …) are ignored.
type v3PrepayRequest struct {
	AppID       string `json:"appid"`
	MchID       string `json:"mchid"`
	Description string `json:"description"`
	OutTradeNo  string `json:"out_trade_no"`
	TimeExpire  string `json:"time_expire"`
	Attach      string `json:"attach"`
	NotifyURL   string `json:"notify_url"`
	Amount      *struct {
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
	Payer *struct {
		OpenID string `json:"openid"`
	} `json:"payer"`
}

// handleV3Prepay serves POST /v3/pay/transactions/jsapi and /native.
func (s *Server) handleV3Prepay(tradeType string) func(r *http.Request, body []byte) v3Answer {
	return func(_ *http.Request, body []byte) v3Answer {
		var req v3PrepayRequest
		if err := json.Unmarshal(body, &req); err != nil {
			return v3ParamError("body is not a JSON prepay request: " + clip(err.Error()))
		}
		o := prepayOrder{Version: "v3", TradeType: tradeType, OutTradeNo: req.OutTradeNo, Description: req.Description,
			Attach: req.Attach, NotifyURL: req.NotifyURL}
		switch {
		case req.AppID == "" || req.MchID == "":
			return v3ParamError("appid and mchid are required")
		case req.AppID != s.cfg.AppID || req.MchID != s.cfg.MchID:
			return v3Fail(http.StatusBadRequest, "APPID_MCHID_NOT_MATCH", "appid和mchid不匹配")
		case req.Description == "" || utf8.RuneCountInString(req.Description) > 127:
			return v3ParamError("description must be 1 to 127 characters")
		case !payment.ValidOutTradeNo(req.OutTradeNo):
			return v3ParamError("out_trade_no must be 6 to 32 of A-Z a-z 0-9 _ - | *")
		case utf8.RuneCountInString(req.Attach) > 128:
			return v3ParamError("attach must be at most 128 characters")
		case !notifyURLOK(req.NotifyURL):
			return v3ParamError("notify_url must be an http(s) URL without a query")
		case req.Amount == nil || req.Amount.Total == nil || *req.Amount.Total <= 0:
			return v3ParamError("amount.total must be an integer > 0 (fen)")
		case req.Amount.Currency != "" && req.Amount.Currency != payment.DefaultCurrency:
			return v3ParamError("amount.currency must be CNY")
		}
		o.AmountFen = *req.Amount.Total
		if tradeType == "JSAPI" {
			if req.Payer == nil || req.Payer.OpenID == "" {
				return v3ParamError("payer.openid is required for JSAPI")
			}
			o.OpenID = req.Payer.OpenID
		}
		if req.TimeExpire != "" {
			t, err := time.Parse(time.RFC3339, req.TimeExpire)
			if err != nil {
				return v3ParamError("time_expire must be RFC 3339 (2018-06-08T10:34:56+08:00)")
			}
			o.TimeExpire = t
		}
		res, err := s.trades.prepay(o, s.now())
		switch {
		case errors.Is(err, errOrderPaid):
			return v3Fail(http.StatusBadRequest, "ORDERPAID", "该订单已支付")
		case errors.Is(err, errOrderClosed):
			return v3Fail(http.StatusBadRequest, "ORDER_CLOSED", "订单已关闭")
		case errors.Is(err, errOutTradeNoUsed):
			return v3Fail(http.StatusBadRequest, "OUT_TRADE_NO_USED", "商户订单号重复")
		case err != nil:
			return v3Fail(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误")
		}
		if tradeType == "NATIVE" {
			return v3Answer{http.StatusOK, map[string]string{"code_url": res.CodeURL}}
		}
		return v3Answer{http.StatusOK, map[string]string{"prepay_id": res.PrepayID}}
	}
}

// notifyURLOK reports whether u is an http(s) URL without a query, as a
// notify_url must be (WeChat also demands https; the sandbox allows http).
func notifyURLOK(u string) bool {
	return httpURL(u) && !strings.ContainsAny(u, "?#")
}

// handleV3Close serves POST /v3/pay/transactions/out-trade-no/{no}/close:
// 204 when the trade is closed (also when it already was).
func (s *Server) handleV3Close(r *http.Request, body []byte) v3Answer {
	var req struct {
		MchID string `json:"mchid"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return v3ParamError("body must be {\"mchid\":\"…\"}")
	}
	if req.MchID != s.cfg.MchID {
		return v3ParamError("mchid must be this merchant's id")
	}
	_, err := s.trades.close(r.PathValue("out_trade_no"), s.now())
	switch {
	case errors.Is(err, errNoTrade):
		return v3Fail(http.StatusNotFound, "ORDER_NOT_EXIST", "订单不存在")
	case errors.Is(err, errOrderPaid):
		return v3Fail(http.StatusBadRequest, "ORDERPAID", "订单已支付")
	case err != nil:
		return v3Fail(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误")
	}
	return v3Answer{status: http.StatusNoContent}
}
