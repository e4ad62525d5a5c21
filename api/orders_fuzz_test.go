package api

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/payflow/payflow/payment"
)

// FuzzDecodeOrderRequest: POST /orders' body parser never panics, and what
// it accepts is valid: a good out_trade_no (or none), integer fen > 0, a
// known trade type with its openid rule.
func FuzzDecodeOrderRequest(f *testing.F) {
	for _, s := range []string{
		`{"out_trade_no":"ORDER123","amount_fen":123,"description":"coffee"}`,
		`{"amount_fen":1,"description":"x","trade_type":"JSAPI","openid":"oUser"}`,
		`{"amount_fen":1,"description":"x","trade_type":"NATIVE","timeout_seconds":60}`,
		`{"amount_fen":1.5}`, `{"amount_fen":-1}`, `{}`, `[]`, `{"amount_fen":1}{"amount_fen":2}`,
		`{"out_trade_no":"a|b*c-d_e","amount_fen":9223372036854775807}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/orders", bytes.NewReader(body))
		req, err := decodeOrderRequest(httptest.NewRecorder(), r)
		if err != nil {
			return
		}
		if req.AmountFen <= 0 || (req.OutTradeNo != "" && !payment.ValidOutTradeNo(req.OutTradeNo)) {
			t.Fatalf("accepted an invalid order: %+v", req)
		}
		switch req.TradeType {
		case "":
		case payment.TradeTypeJSAPI:
			if req.OpenID == "" {
				t.Fatalf("accepted JSAPI without openid: %+v", req)
			}
		case payment.TradeTypeNative:
		default:
			t.Fatalf("accepted trade_type %q", req.TradeType)
		}
		if !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}
