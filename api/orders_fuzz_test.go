package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
)

// FuzzDecodeOrderRequest drives the real POST /orders handler with any
// body, on a store that records its calls. The interface's property: a body
// the api accepts (201) is exactly one UTF-8 JSON object, with only the
// interface's fields, each once, of its type and with a valid value, and
// that order is stored once as sent; anything else is answered 400 and
// nothing is stored or started. (503 is the one other answer: a prepay
// asked of a server without WECHATPAY_NOTIFY_URL, also storing nothing.)
func FuzzDecodeOrderRequest(f *testing.F) {
	for _, s := range []string{
		`{"out_trade_no":"ORDER123","amount_fen":123,"description":"coffee"}`,
		`{"amount_fen":1,"description":"x","trade_type":"JSAPI","openid":"oUser"}`,
		`{"amount_fen":1,"description":"x","trade_type":"NATIVE","timeout_seconds":60}`,
		`{"amount_fen":1.5}`, `{"amount_fen":-1}`, `{}`, `[]`, `{"amount_fen":1}{"amount_fen":2}`,
		`{"out_trade_no":"a|b*c-d_e","amount_fen":9223372036854775807}`,
		`{"amount_fen":100,"description":"t"}}`, `{"amount_fen":1,"amount_fen":2}`, `{"AMOUNT_FEN":1}`,
		`{"amount_fen":1,"description":null}`, `{"amount_fen":1e2}`, ` {"amount_fen":7} `, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, orders, tc := testServer(io.Discard)
		r := httptest.NewRequest(http.MethodPost, "/orders", bytes.NewReader(body))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)

		want, wellFormed := oracleOrder(body)
		switch w.Code {
		case http.StatusCreated:
			if !wellFormed {
				t.Fatalf("accepted a body that is not one JSON object of the interface's fields and types: %q", body)
			}
			if len(orders.created) != 1 || len(tc.starts) != 1 {
				t.Fatalf("201 but stored %d, started %d", len(orders.created), len(tc.starts))
			}
			got := orders.created[0]
			if got.AmountFen != want.AmountFen || got.Description != want.Description || got.TradeType != want.TradeType ||
				got.OpenID != want.OpenID || (want.OutTradeNo != "" && got.OutTradeNo != want.OutTradeNo) {
				t.Fatalf("stored %+v for %q", got, body)
			}
			if got.AmountFen <= 0 || !payment.ValidOutTradeNo(got.OutTradeNo) || !utf8.ValidString(got.Description) ||
				utf8.RuneCountInString(got.Description) > 127 || want.TimeoutSeconds < 0 || want.TimeoutSeconds > maxTimeoutSeconds {
				t.Fatalf("accepted an invalid order: %+v from %q", got, body)
			}
			switch got.TradeType {
			case "", payment.TradeTypeNative:
				if got.OpenID != "" {
					t.Fatalf("accepted an openid without JSAPI: %q", body)
				}
			case payment.TradeTypeJSAPI:
				if got.OpenID == "" {
					t.Fatalf("accepted JSAPI without openid: %q", body)
				}
			default:
				t.Fatalf("accepted trade_type %q", got.TradeType)
			}
		case http.StatusBadRequest, http.StatusServiceUnavailable:
			if w.Code == http.StatusServiceUnavailable && (!wellFormed || want.TradeType == "") {
				t.Fatalf("503 for %q, which is not a prepay request", body)
			}
			if n := orders.calls() + tc.calls(); n != 0 {
				t.Fatalf("%d for %q, but %d calls reached the store and Temporal", w.Code, body, n)
			}
			var e map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Fatalf("%d without {\"error\":…}: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		if !wellFormed && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d for a body that is not one JSON object of the interface's fields and types: %q", w.Code, body)
		}
	})
}

// jsonInteger is an RFC 8259 number without fraction or exponent.
var jsonInteger = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)

// oracleOrder decides, independently of decodeJSON, whether body is one
// UTF-8 JSON object whose members are the interface's fields, each once,
// none null, strings where strings go and int64 integers where integers
// go; and returns what it says.
func oracleOrder(body []byte) (createOrderRequest, bool) {
	var req createOrderRequest
	if !utf8.Valid(body) || !json.Valid(body) { // json.Valid: one value, nothing after it
		return req, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return req, false
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, _ := dec.Token()
		name := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil || seen[name] {
			return req, false
		}
		seen[name] = true
		str := func(dst *string) bool { return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, dst) == nil }
		integer := func(dst *int64) bool {
			if !jsonInteger.Match(raw) {
				return false
			}
			n, err := strconv.ParseInt(string(raw), 10, 64)
			*dst = n
			return err == nil
		}
		var ok bool
		switch name {
		case "out_trade_no":
			ok = str(&req.OutTradeNo)
		case "amount_fen":
			ok = integer(&req.AmountFen)
		case "description":
			ok = str(&req.Description)
		case "trade_type":
			ok = str(&req.TradeType)
		case "openid":
			ok = str(&req.OpenID)
		case "timeout_seconds":
			ok = integer(&req.TimeoutSeconds)
		}
		if !ok {
			return req, false
		}
	}
	return req, true
}
