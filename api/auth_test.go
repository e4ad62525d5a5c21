package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	token1 = "first-token-0123456789abcdef"
	token2 = "second-token-fedcba9876543210"
)

const orderBody = `{"out_trade_no":"AUTH000001","amount_fen":100,"description":"t"}`

// The token check: every way of (not) presenting a token, on POST /orders.
func TestBearerTokenCheck(t *testing.T) {
	for _, tt := range []struct {
		name   string
		target string
		header []string // Authorization values
		want   int
	}{
		{"no header", "/orders", nil, http.StatusUnauthorized},
		{"right token", "/orders", []string{"Bearer " + token1}, http.StatusCreated},
		{"second token (rotation)", "/orders", []string{"Bearer " + token2}, http.StatusCreated},
		{"wrong token", "/orders", []string{"Bearer wrong-token-0123456789abcdef"}, http.StatusUnauthorized},
		{"a prefix of the token", "/orders", []string{"Bearer " + token1[:len(token1)-1]}, http.StatusUnauthorized},
		{"the token and more", "/orders", []string{"Bearer " + token1 + "x"}, http.StatusUnauthorized},
		{"both tokens joined", "/orders", []string{"Bearer " + token1 + "," + token2}, http.StatusUnauthorized},
		{"empty header", "/orders", []string{""}, http.StatusUnauthorized},
		{"Bearer alone", "/orders", []string{"Bearer"}, http.StatusUnauthorized},
		{"Bearer and a space", "/orders", []string{"Bearer "}, http.StatusUnauthorized},
		{"token without scheme", "/orders", []string{token1}, http.StatusUnauthorized},
		{"Basic scheme", "/orders", []string{"Basic dXNlcjpwYXNz"}, http.StatusUnauthorized},
		{"Basic with the token", "/orders", []string{"Basic " + token1}, http.StatusUnauthorized},
		{"lowercase scheme", "/orders", []string{"bearer " + token1}, http.StatusUnauthorized},
		{"uppercase scheme", "/orders", []string{"BEARER " + token1}, http.StatusUnauthorized},
		{"two spaces", "/orders", []string{"Bearer  " + token1}, http.StatusUnauthorized},
		{"tab", "/orders", []string{"Bearer\t" + token1}, http.StatusUnauthorized},
		{"token then a word", "/orders", []string{"Bearer " + token1 + " extra"}, http.StatusUnauthorized},
		{"quoted token", "/orders", []string{`Bearer "` + token1 + `"`}, http.StatusUnauthorized},
		{"two Authorization headers", "/orders", []string{"Bearer " + token1, "Bearer " + token1}, http.StatusUnauthorized},
		{"token in the query string", "/orders?access_token=" + token1, nil, http.StatusUnauthorized},
		{"token in the query string, wrong header", "/orders?token=" + token1, []string{"Bearer nope-0123456789abcdefgh"}, http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			s, orders, tc := testServer(&logs, token1, token2)
			r := httptest.NewRequest(http.MethodPost, tt.target, strings.NewReader(orderBody))
			for _, h := range tt.header {
				r.Header.Add("Authorization", h)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want != http.StatusUnauthorized {
				if len(orders.created) != 1 {
					t.Fatalf("created %d orders, want 1", len(orders.created))
				}
				return
			}
			assertDenied(t, w, &logs, orders, tc)
		})
	}
}

// assertDenied: a 401 with the interface's body and a Bearer challenge,
// nothing asked of the store or Temporal, no token in the answer or the
// log, which says that a request was denied.
func assertDenied(t *testing.T, w *httptest.ResponseRecorder, logs *strings.Builder, orders *fakeOrders, tc *fakeTemporal) {
	t.Helper()
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", w.Code, w.Body)
	}
	if got := w.Header().Get("WWW-Authenticate"); got != "Bearer" {
		t.Errorf("WWW-Authenticate = %q, want Bearer", got)
	}
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["error"] == "" || len(body) != 1 {
		t.Errorf("body %q, want {\"error\":…}", w.Body)
	}
	if n := orders.calls() + tc.calls(); n != 0 {
		t.Errorf("a denied request made %d calls to the store and Temporal", n)
	}
	for _, tok := range []string{token1, token2, token1[:12], token2[:12]} {
		if strings.Contains(w.Body.String(), tok) || strings.Contains(logs.String(), tok) {
			t.Errorf("a token shows in the answer or the log:\n%s\n%s", w.Body, logs)
		}
	}
	if !strings.Contains(logs.String(), "request denied") {
		t.Errorf("the denial is not logged: %s", logs.String())
	}
}

// Every path but the public ones needs the token, whatever the method,
// including paths that do not exist yet: the allow-list is what is open.
func TestEveryOrderPathNeedsAToken(t *testing.T) {
	for _, req := range []struct{ method, target, body string }{
		{http.MethodPost, "/orders", orderBody},
		{http.MethodGet, "/orders/AUTH000001", ""},
		{http.MethodPost, "/orders/AUTH000001/close", ""},
		{http.MethodPost, "/orders/AUTH000001/sync", ""},
		{http.MethodPost, "/orders/AUTH000001/resolve", `{"action":"close","operator":"op","reason":"r"}`},
		{http.MethodGet, "/inbox", ""},
		{http.MethodGet, "/inbox?state=pending", ""},
		{http.MethodPost, "/inbox/1/redrive", ""},
		{http.MethodPost, "/orders/AUTH000001/refunds", `{"amount_fen":1}`},
		{http.MethodGet, "/orders/AUTH000001/refunds/R1", ""},
		{http.MethodPost, "/reconciliations/2026-11-25", ""},
		{http.MethodGet, "/reconciliations/2026-11-25", ""},
		{http.MethodGet, "/admin", ""},
		{http.MethodGet, "/", ""},
		{http.MethodDelete, "/orders/AUTH000001", ""},
		// A public path under another method, and look-alikes of public paths.
		{http.MethodGet, "/wechatpay/notify", ""},
		{http.MethodPost, "/healthz", ""},
		{http.MethodGet, "/healthz/", ""},
		{http.MethodGet, "/metrics/x", ""},
		{http.MethodPost, "/wechatpay/notify/../../orders", orderBody},
		{http.MethodPost, "//orders", orderBody},
		{http.MethodPost, "/wechatpay/v3/notify/", ""},
	} {
		t.Run(req.method+" "+req.target, func(t *testing.T) {
			var logs strings.Builder
			s, orders, tc := testServer(&logs, token1)
			assertDenied(t, do(s.Handler(), req.method, req.target, "", req.body), &logs, orders, tc)
		})
	}
}

// The notify endpoints, /healthz, /readyz and /metrics never need a token:
// each request reaches its handler.
func TestPublicRoutesNeedNoToken(t *testing.T) {
	s, _, _ := testServer(&strings.Builder{}, token1)
	h := s.Handler()
	w := do(h, http.MethodPost, "/wechatpay/notify", "", "<xml><return_code>FAIL</return_code></xml>")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "<return_code><![CDATA[FAIL]]>") {
		t.Errorf("v2 notify: %d %s, want the handler's answer (v2 not configured here)", w.Code, w.Body)
	}
	w = do(h, http.MethodPost, "/wechatpay/v3/notify", "", `{}`)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"code":"FAIL"`) {
		t.Errorf("v3 notify: %d %s, want the handler's answer (v3 not configured here)", w.Code, w.Body)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if w := do(h, http.MethodGet, path, "", ""); w.Code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, w.Code, w.Body)
		}
	}
	// A wrong token on a public route changes nothing either.
	if w := do(h, http.MethodGet, "/healthz", "Bearer wrong-token-0123456789", ""); w.Code != http.StatusOK {
		t.Errorf("GET /healthz with a wrong token: %d", w.Code)
	}
}

// Without API_TOKENS (bin/api then listens on loopback only) the order API
// needs no token.
func TestNoTokensConfiguredMeansNoCheck(t *testing.T) {
	s, orders, _ := testServer(&strings.Builder{})
	if w := do(s.Handler(), http.MethodPost, "/orders", "", orderBody); w.Code != http.StatusCreated {
		t.Fatalf("POST /orders: %d %s", w.Code, w.Body)
	}
	if len(orders.created) != 1 {
		t.Fatalf("created %d", len(orders.created))
	}
}

// A 401 changes nothing: the same request with the token then creates
// the order, exactly once, and reads see it only with a token.
func TestDeniedRequestChangesNothing(t *testing.T) {
	s, orders, tc := testServer(&strings.Builder{}, token1)
	h := s.Handler()
	for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Basic " + token1} {
		if w := do(h, http.MethodPost, "/orders", auth, orderBody); w.Code != http.StatusUnauthorized {
			t.Fatalf("POST /orders with %q: %d", auth, w.Code)
		}
	}
	if len(orders.created) != 0 || tc.calls() != 0 || len(orders.orders) != 0 {
		t.Fatalf("denied requests reached the store (%d) or Temporal (%d)", len(orders.created), tc.calls())
	}
	if w := do(h, http.MethodPost, "/orders", "Bearer "+token1, orderBody); w.Code != http.StatusCreated {
		t.Fatalf("POST /orders with the token: %d %s", w.Code, w.Body)
	}
	if w := do(h, http.MethodGet, "/orders/AUTH000001", "", ""); w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "AUTH000001") {
		t.Fatalf("GET without a token: %d %s", w.Code, w.Body)
	}
	for _, path := range []string{"/orders/AUTH000001/close", "/orders/AUTH000001/sync"} {
		if w := do(h, http.MethodPost, path, "", ""); w.Code != http.StatusUnauthorized {
			t.Fatalf("POST %s without a token: %d", path, w.Code)
		}
	}
	if len(orders.created) != 1 || len(tc.starts) != 1 || len(tc.signals) != 0 || len(tc.updates) != 0 {
		t.Fatalf("after the denied close and sync: created %d, starts %v, signals %v, updates %v",
			len(orders.created), tc.starts, tc.signals, tc.updates)
	}
	w := do(h, http.MethodGet, "/orders/AUTH000001", "Bearer "+token1, "")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"status":"PENDING"`) {
		t.Fatalf("GET with the token: %d %s", w.Code, w.Body)
	}
}

// An order API request runs under RequestTimeout; public routes do not.
func TestOrderRequestsHaveADeadline(t *testing.T) {
	s, orders, _ := testServer(&strings.Builder{}, token1)
	if w := do(s.Handler(), http.MethodPost, "/orders", "Bearer "+token1, orderBody); w.Code != http.StatusCreated {
		t.Fatalf("POST /orders: %d", w.Code)
	}
	if left := orders.deadlines[0]; left <= 0 || left > RequestTimeout || left < RequestTimeout-time.Second {
		t.Fatalf("CreateOrder ran with %s left, want about RequestTimeout (%s)", left, RequestTimeout)
	}
}

func TestTokenCheckHoldsDigestsOnly(t *testing.T) {
	s, _, _ := testServer(&strings.Builder{}, token1, token2)
	c := newTokenCheck(s.Tokens)
	if len(c.digests) != 2 {
		t.Fatalf("%d digests", len(c.digests))
	}
	for _, d := range c.digests {
		if strings.Contains(string(d[:]), token1) || strings.Contains(string(d[:]), token2) {
			t.Fatal("a digest holds a token")
		}
	}
}
