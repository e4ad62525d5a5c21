package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// POST /orders takes exactly one JSON object with the interface's fields,
// each of its type; anything else is 400 and nothing is stored or started.
func TestCreateOrderStrictBody(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		want       int
		msg        string // in the error, when 400
	}{
		{"good", `{"out_trade_no":"STRICT0001","amount_fen":100,"description":"t"}`, http.StatusCreated, ""},
		{"good, generated number", `{"amount_fen":100,"description":"t"}`, http.StatusCreated, ""},
		{"good, blank around", " \n\t{\"amount_fen\":100}\r\n ", http.StatusCreated, ""},
		{"good, all fields", `{"out_trade_no":"STRICT0002","amount_fen":1,"description":"x","trade_type":"","openid":"","timeout_seconds":60}`, http.StatusCreated, ""},

		{"trailing brace (issue 9)", `{"amount_fen":100,"description":"t"}}`, http.StatusBadRequest, "exactly one JSON object"},
		{"trailing bracket", `{"amount_fen":100,"description":"t"}]`, http.StatusBadRequest, "exactly one JSON object"},
		{"trailing garbage", `{"amount_fen":100}x`, http.StatusBadRequest, "exactly one JSON object"},
		{"trailing number", `{"amount_fen":100} 1`, http.StatusBadRequest, "exactly one JSON object"},
		{"two objects", `{"amount_fen":100}{"amount_fen":200}`, http.StatusBadRequest, "exactly one JSON object"},
		{"two objects, newline", "{\"amount_fen\":100}\n{\"amount_fen\":200}", http.StatusBadRequest, "exactly one JSON object"},
		{"empty", ``, http.StatusBadRequest, "exactly one JSON object"},
		{"null", `null`, http.StatusBadRequest, "exactly one JSON object"},
		{"array", `[{"amount_fen":100}]`, http.StatusBadRequest, "exactly one JSON object"},
		{"string", `"x"`, http.StatusBadRequest, "exactly one JSON object"},
		{"unterminated", `{"amount_fen":100`, http.StatusBadRequest, "exactly one JSON object"},
		{"missing comma", `{"amount_fen":100 "description":"t"}`, http.StatusBadRequest, "exactly one JSON object"},
		{"unknown field", `{"amount_fen":100,"amount":100}`, http.StatusBadRequest, `unknown field "amount"`},
		{"field in another case", `{"AMOUNT_FEN":100}`, http.StatusBadRequest, `unknown field "AMOUNT_FEN"`},
		{"field twice", `{"amount_fen":1,"amount_fen":100000}`, http.StatusBadRequest, "amount_fen is given twice"},
		{"null value", `{"amount_fen":100,"description":null}`, http.StatusBadRequest, "description must not be null"},
		{"float amount", `{"amount_fen":1.5}`, http.StatusBadRequest, "amount_fen must be an integer"},
		{"integral float amount", `{"amount_fen":100.0}`, http.StatusBadRequest, "amount_fen must be an integer"},
		{"exponent amount", `{"amount_fen":1e2}`, http.StatusBadRequest, "amount_fen must be an integer"},
		{"string amount", `{"amount_fen":"100"}`, http.StatusBadRequest, "amount_fen must be an integer"},
		{"overflowing amount", `{"amount_fen":9223372036854775808}`, http.StatusBadRequest, "amount_fen must be an integer"},
		{"bool amount", `{"amount_fen":true}`, http.StatusBadRequest, "amount_fen must be an integer"},
		{"number description", `{"amount_fen":100,"description":5}`, http.StatusBadRequest, "description must be a string"},
		{"object out_trade_no", `{"amount_fen":100,"out_trade_no":{}}`, http.StatusBadRequest, "out_trade_no must be a string"},
		{"float timeout", `{"amount_fen":100,"timeout_seconds":1.5}`, http.StatusBadRequest, "timeout_seconds must be an integer"},
		{"not UTF-8", "{\"amount_fen\":100,\"description\":\"\xff\"}", http.StatusBadRequest, "UTF-8"},
		{"zero amount", `{"amount_fen":0}`, http.StatusBadRequest, "amount_fen must be an integer > 0"},
		{"bad out_trade_no", `{"out_trade_no":"a b","amount_fen":1}`, http.StatusBadRequest, "out_trade_no must be"},
		{"too large", `{"amount_fen":100,"description":"` + strings.Repeat("x", maxOrderBody) + `"}`, http.StatusBadRequest, "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, orders, tc := testServer(&strings.Builder{})
			w := do(s.Handler(), http.MethodPost, "/orders", "", tt.body)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want == http.StatusCreated {
				if len(orders.created) != 1 || len(tc.starts) != 1 {
					t.Fatalf("created %d, started %d", len(orders.created), len(tc.starts))
				}
				return
			}
			var body map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || !strings.Contains(body["error"], tt.msg) {
				t.Errorf("body %s, want an error saying %q", w.Body, tt.msg)
			}
			if n := orders.calls() + tc.calls(); n != 0 {
				t.Fatalf("bad input made %d calls to the store and Temporal", n)
			}
		})
	}
}

// close and sync take no input: no body or {}; anything else is 400 and
// nothing is asked of the store or Temporal.
func TestCloseAndSyncTakeNoBody(t *testing.T) {
	for _, path := range []string{"/orders/NOBODY0001/close", "/orders/NOBODY0001/sync"} {
		for _, tt := range []struct {
			body string
			want int
		}{
			{"", http.StatusNotFound}, // reaches the handler: no such order
			{"{}", http.StatusNotFound},
			{" {} \n", http.StatusNotFound},
			{"{}}", http.StatusBadRequest},
			{`{"reason":"x"}`, http.StatusBadRequest},
			{"[]", http.StatusBadRequest},
			{"x", http.StatusBadRequest},
		} {
			s, orders, tc := testServer(&strings.Builder{})
			w := do(s.Handler(), http.MethodPost, path, "", tt.body)
			if w.Code != tt.want {
				t.Errorf("POST %s %q: %d, want %d: %s", path, tt.body, w.Code, tt.want, w.Body)
			}
			if tt.want == http.StatusBadRequest && orders.calls()+tc.calls() != 0 {
				t.Errorf("POST %s %q reached the store or Temporal", path, tt.body)
			}
		}
	}
}

// POST /orders/{no}/resolve reads its body with the same strict helper.
func TestResolveStrictBody(t *testing.T) {
	for _, body := range []string{
		`{"action":"close","operator":"op","reason":"r"}}`,
		`{"action":"close","operator":"op","reason":"r"}{}`,
		`{"action":"close","operator":"op","reason":"r","extra":1}`,
		`{"action":"close","Operator":"op","reason":"r"}`,
		`{"action":"close","operator":null,"reason":"r"}`,
		`{"action":1,"operator":"op","reason":"r"}`,
	} {
		s, orders, tc := testServer(&strings.Builder{})
		w := do(s.Handler(), http.MethodPost, "/orders/RESOLVE001/resolve", "", body)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", body, w.Code, w.Body)
		}
		if orders.calls()+tc.calls() != 0 {
			t.Errorf("%s reached the store or Temporal", body)
		}
	}
}
