package api

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/workflows"
)

// The api's handlers, one table each, in the manner of ardanlabs/service's
// productapi tests: every case is a request, the status and body it must
// get, and what it may change. A bad input changes nothing: the store is
// not even asked (noStore) or nothing is written (writes nil), and nothing
// reaches Temporal (temporal nil). Token rules are in auth_test.go.

type seamCase struct {
	name   string
	method string
	path   string
	body   string
	setup  func(f *seam)

	status int
	// fields the JSON answer must hold (compared as JSON), and for an
	// {"error"} answer the words its message must contain
	json   map[string]any
	errMsg string
	check  func(t *testing.T, f *seam, body []byte)

	temporal []string // the calls Temporal must get, in order ("…*": a prefix); nil: none
	writes   []string // the store changes that must take effect, likewise; nil: none
	noStore  bool     // the store must not even be asked
}

func runSeamCases(t *testing.T, cases []seamCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newSeam()
			if tc.setup != nil {
				tc.setup(f)
			}
			f.st.calls, f.st.writes = nil, nil // what setup did is not the request's
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			w := f.serve(method, tc.path, tc.body)
			body := w.Body.Bytes()
			if w.Code != tc.status {
				t.Fatalf("%s %s: status %d, want %d: %s", method, tc.path, w.Code, tc.status, body)
			}
			if s := string(body); strings.Contains(s, internalDetail) || strings.Contains(s, seamOpenID) {
				t.Errorf("the answer leaks an internal error or an openid: %s", s)
			}
			if strings.Contains(f.logs.String(), seamOpenID) {
				t.Errorf("a log line holds the payer's openid")
			}
			if tc.json != nil || tc.errMsg != "" {
				if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q, want JSON", ct)
				}
			}
			if tc.errMsg != "" {
				var e map[string]string
				if err := json.Unmarshal(body, &e); err != nil || len(e) != 1 || !strings.Contains(e["error"], tc.errMsg) {
					t.Errorf("answer %s, want {\"error\"} saying %q", body, tc.errMsg)
				}
			}
			if tc.json != nil {
				jsonHas(t, body, tc.json)
			}
			if tc.check != nil {
				tc.check(t, f, body)
			}
			if !callsMatch(f.tc.calls, tc.temporal) {
				t.Errorf("Temporal got %q, want %q", f.tc.calls, tc.temporal)
			}
			if !callsMatch(f.st.writes, tc.writes) {
				t.Errorf("store changes %q, want %q", f.st.writes, tc.writes)
			}
			if tc.noStore && len(f.st.calls) != 0 {
				t.Errorf("bad input asked the store: %q", f.st.calls)
			}
		})
	}
}

// callsMatch compares calls with want, where a want ending in "*" is a
// prefix.
func callsMatch(calls, want []string) bool {
	if len(calls) != len(want) {
		return false
	}
	for i, w := range want {
		if p, ok := strings.CutSuffix(w, "*"); ok {
			if !strings.HasPrefix(calls[i], p) {
				return false
			}
		} else if calls[i] != w {
			return false
		}
	}
	return true
}

// jsonHas checks that the JSON object body has each field of want, equal
// as JSON values.
func jsonHas(t *testing.T, body []byte, want map[string]any) {
	t.Helper()
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, body)
	}
	for k, v := range want {
		b, _ := json.Marshal(v)
		var w any
		_ = json.Unmarshal(b, &w)
		g, ok := got[k]
		if !ok || !reflect.DeepEqual(g, w) {
			t.Errorf("field %s = %v, want %v (answer %s)", k, g, w, body)
		}
	}
}

// refuse is a workflow's typed refusal of an update.
func refuse(typ, msg string) answer {
	return func([]any) (any, error) { return nil, temporal.NewNonRetryableApplicationError(msg, typ, nil) }
}

func reply(v any) answer { return func([]any) (any, error) { return v, nil } }

// badJSON are bodies that are not exactly one JSON object of the right
// types; every endpoint with a body refuses each with 400.
var badJSON = []struct{ name, body, msg string }{
	{"trailing brace", `{"amount_fen":100}}`, "exactly one JSON object"},
	{"trailing data", `{"amount_fen":100} x`, "exactly one JSON object"},
	{"two objects", `{"amount_fen":100}{"amount_fen":100}`, "exactly one JSON object"},
	{"unknown field", `{"amount_fen":100,"amount":100}`, `unknown field "amount"`},
	{"field in another case", `{"Amount_Fen":100}`, `unknown field "Amount_Fen"`},
	{"field twice", `{"amount_fen":1,"amount_fen":100}`, "amount_fen is given twice"},
	{"string for an integer", `{"amount_fen":"100"}`, "amount_fen must be an integer"},
	{"fraction for an integer", `{"amount_fen":1.5}`, "amount_fen must be an integer"},
	{"null value", `{"amount_fen":null}`, "amount_fen must not be null"},
	{"null", `null`, "exactly one JSON object"},
	{"array", `[{"amount_fen":100}]`, "exactly one JSON object"},
	{"empty", ``, "exactly one JSON object"},
}

// badBodies turns badJSON into 400 cases on path that change nothing.
func badBodies(path string, setup func(f *seam)) []seamCase {
	var cs []seamCase
	for _, b := range badJSON {
		cs = append(cs, seamCase{name: "400 body: " + b.name, path: path, body: b.body, setup: setup,
			status: http.StatusBadRequest, errMsg: b.msg, noStore: true})
	}
	return cs
}

func TestCreateOrderHandler(t *testing.T) {
	const no = "SEAM000001"
	native := func(f *seam) {
		f.tc.answers[workflows.UpdatePrepay] = reply(workflows.PrepayResult{Prepay: payment.Prepay{PrepayID: "wx26", CodeURL: "weixin://wxpay/bizpayurl?pr=Seam001"}})
	}
	created := []string{"create " + no}
	cases := []seamCase{
		{name: "201 order", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea"}`,
			status: http.StatusCreated,
			json: map[string]any{"out_trade_no": no, "amount_fen": 100, "currency": "CNY", "description": "tea", "status": "PENDING",
				"transaction_id": "", "paid_at": nil, "expires_at": "2026-11-26T10:30:00Z", "refunded_fen": 0, "refunds": []any{}},
			check: func(t *testing.T, f *seam, _ []byte) {
				o := f.tc.starts[0]
				if o.TaskQueue != "payments" || o.ID != "payment/"+no {
					t.Errorf("started %s on %s", o.ID, o.TaskQueue)
				}
			},
			temporal: []string{"start payment/" + no}, writes: created},
		{name: "201 generated out_trade_no", path: "/orders", body: `{"amount_fen":100}`, status: http.StatusCreated,
			check: func(t *testing.T, f *seam, body []byte) {
				var o payment.Order
				_ = json.Unmarshal(body, &o)
				if !regexp.MustCompile(`^PF20261126100000[0-9]{10}$`).MatchString(o.OutTradeNo) || f.st.writes[0] != "create "+o.OutTradeNo {
					t.Errorf("generated %q, stored %q", o.OutTradeNo, f.st.writes)
				}
			},
			temporal: []string{"start payment/PF20261126100000*"}, writes: []string{"create PF20261126100000*"}},
		{name: "201 timeout_seconds overrides ORDER_TIMEOUT", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"timeout_seconds":60}`,
			status: http.StatusCreated, json: map[string]any{"expires_at": "2026-11-26T10:01:00Z"},
			temporal: []string{"start payment/" + no}, writes: created},
		{name: "201 timeout_seconds at most 7 days", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"timeout_seconds":604800}`,
			status: http.StatusCreated, json: map[string]any{"expires_at": "2026-12-03T10:00:00Z"},
			temporal: []string{"start payment/" + no}, writes: created},
		{name: "201 amount of 1 fen", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":1}`,
			status: http.StatusCreated, json: map[string]any{"amount_fen": 1}, temporal: []string{"start payment/" + no}, writes: created},
		{name: "201 shortest out_trade_no, every symbol", path: "/orders", body: `{"out_trade_no":"a_-|*9","amount_fen":1}`,
			status: http.StatusCreated, json: map[string]any{"out_trade_no": "a_-|*9"},
			temporal: []string{"start payment/a_-|*9"}, writes: []string{"create a_-|*9"}},
		{name: "201 longest out_trade_no", path: "/orders", body: `{"out_trade_no":"` + strings.Repeat("Z", 32) + `","amount_fen":1}`,
			status: http.StatusCreated, temporal: []string{"start payment/" + strings.Repeat("Z", 32)}, writes: []string{"create " + strings.Repeat("Z", 32)}},
		{name: "201 description of 127 characters", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":1,"description":"` + strings.Repeat("茶", 127) + `"}`,
			status: http.StatusCreated, temporal: []string{"start payment/" + no}, writes: created},
		{name: "201 when the workflow does not start (the safety net starts it)", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100}`,
			setup:  func(f *seam) { f.tc.failStart = errors.New(internalDetail) },
			status: http.StatusCreated, json: map[string]any{"status": "PENDING"}, temporal: []string{"start payment/" + no}, writes: created},
		{name: "201 NATIVE prepay in one call", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			setup: native, status: http.StatusCreated,
			json:     map[string]any{"trade_type": "NATIVE", "code_url": "weixin://wxpay/bizpayurl?pr=Seam001", "status": "PENDING"},
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "201 JSAPI prepay: wx.requestPayment's arguments, never the openid", path: "/orders",
			body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"JSAPI","openid":"` + seamOpenID + `"}`,
			setup: func(f *seam) {
				f.tc.answers[workflows.UpdatePrepay] = reply(workflows.PrepayResult{Prepay: payment.Prepay{PrepayID: "wx26", JSAPI: &payment.JSAPIParams{
					AppID: testAppID, TimeStamp: "1764151200", NonceStr: "n0nce", Package: "prepay_id=wx26", SignType: "RSA", PaySign: "c2ln"}}})
			},
			status: http.StatusCreated,
			json: map[string]any{"trade_type": "JSAPI", "jsapi": map[string]any{"appId": testAppID, "timeStamp": "1764151200",
				"nonceStr": "n0nce", "package": "prepay_id=wx26", "signType": "RSA", "paySign": "c2ln"}},
			check: func(t *testing.T, f *seam, _ []byte) {
				if o := f.tc.starts[0]; strings.Contains(jsonString(o.Memo), seamOpenID) || strings.Contains(o.StaticSummary, seamOpenID) {
					t.Error("the openid went into the workflow's memo or summary")
				}
			},
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "502 WeChat refused the prepay (the order exists)", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			setup: func(f *seam) {
				f.tc.answers[workflows.UpdatePrepay] = reply(workflows.PrepayResult{Error: "OUT_TRADE_NO_USED: 商户订单号重复"})
			},
			status: http.StatusBadGateway, errMsg: "WeChat Pay refused the prepay: OUT_TRADE_NO_USED",
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "503 prepay not finished in time (the order exists)", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			status: http.StatusServiceUnavailable, errMsg: "GET /orders/SEAM000001 shows it once done",
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "503 prepay refused by the workflow: its refusal, from the one table", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			setup: func(f *seam) {
				f.tc.answers[workflows.UpdatePrepay] = refuse(workflows.ErrTypeNotOwned, "this order is not prepaid by its workflow")
			},
			status: http.StatusServiceUnavailable, errMsg: "this order is not prepaid by its workflow",
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "409 prepay refused by the workflow: the order is paid", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			setup: func(f *seam) {
				f.tc.answers[workflows.UpdatePrepay] = refuse(workflows.ErrTypeAlreadyPaid, "order already paid")
			},
			status: http.StatusConflict, errMsg: "order already paid",
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "503 prepay failed inside the workflow: nothing of its text shown", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			setup: func(f *seam) {
				f.tc.answers[workflows.UpdatePrepay] = refuse("SomethingInternal", internalDetail)
			},
			status: http.StatusServiceUnavailable, errMsg: "its prepay did not finish in time",
			temporal: []string{"update payment/" + no + " prepay prepay"}, writes: created},
		{name: "503 prepay not configured", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100,"description":"tea","trade_type":"NATIVE"}`,
			setup:  func(f *seam) { f.srv.CanPrepay = false },
			status: http.StatusServiceUnavailable, errMsg: "WECHATPAY_NOTIFY_URL", noStore: true},
		{name: "409 out_trade_no exists", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100}`,
			setup:  func(f *seam) { f.st.put(no, payment.StatusPaid, 500) },
			status: http.StatusConflict, errMsg: "out_trade_no SEAM000001 already exists"},
		{name: "500 store down", path: "/orders", body: `{"out_trade_no":"SEAM000001","amount_fen":100}`,
			setup:  func(f *seam) { f.st.failCreate = errors.New(internalDetail) },
			status: http.StatusInternalServerError, errMsg: "could not create the order"},
	}
	for _, bad := range []struct{ name, body, msg string }{
		{"amount 0", `{"amount_fen":0}`, "amount_fen must be an integer > 0"},
		{"amount negative", `{"amount_fen":-1}`, "amount_fen must be an integer > 0"},
		{"amount most negative", `{"amount_fen":-9223372036854775808}`, "amount_fen must be an integer > 0"},
		{"amount overflows", `{"amount_fen":9223372036854775808}`, "amount_fen must be an integer"},
		{"amount missing", `{"description":"tea"}`, "amount_fen must be an integer > 0"},
		{"out_trade_no of 5", `{"out_trade_no":"ABCDE","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"out_trade_no of 33", `{"out_trade_no":"` + strings.Repeat("Z", 33) + `","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"out_trade_no with a space", `{"out_trade_no":"SEAM 00001","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"out_trade_no with a slash", `{"out_trade_no":"SEAM/00001","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"out_trade_no with a dot", `{"out_trade_no":"SEAM.00001","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"out_trade_no with a hash", `{"out_trade_no":"SEAM#00001","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"out_trade_no not ASCII", `{"out_trade_no":"订单000001","amount_fen":1}`, "out_trade_no must be 6-32"},
		{"description of 128 characters", `{"amount_fen":1,"description":"` + strings.Repeat("茶", 128) + `"}`, "description must be valid UTF-8 of at most 127"},
		{"timeout negative", `{"amount_fen":1,"timeout_seconds":-1}`, "timeout_seconds must be between 1 and 604800"},
		{"timeout over 7 days", `{"amount_fen":1,"timeout_seconds":604801}`, "timeout_seconds must be between 1 and 604800"},
		{"JSAPI without openid", `{"amount_fen":1,"description":"tea","trade_type":"JSAPI"}`, "trade_type JSAPI needs the payer's openid"},
		{"JSAPI with an openid of 129", `{"amount_fen":1,"description":"tea","trade_type":"JSAPI","openid":"` + strings.Repeat("o", 129) + `"}`, "trade_type JSAPI needs the payer's openid"},
		{"NATIVE with an openid", `{"amount_fen":1,"description":"tea","trade_type":"NATIVE","openid":"` + seamOpenID + `"}`, "openid goes with trade_type JSAPI"},
		{"openid without trade_type", `{"amount_fen":1,"openid":"` + seamOpenID + `"}`, "openid goes with trade_type JSAPI"},
		{"trade_type APP", `{"amount_fen":1,"description":"tea","trade_type":"APP"}`, "trade_type must be JSAPI or NATIVE"},
		{"trade_type in lower case", `{"amount_fen":1,"description":"tea","trade_type":"native"}`, "trade_type must be JSAPI or NATIVE"},
		{"prepay without description", `{"amount_fen":1,"trade_type":"NATIVE"}`, "description is required to prepay"},
	} {
		cases = append(cases, seamCase{name: "400 " + bad.name, path: "/orders", body: bad.body,
			status: http.StatusBadRequest, errMsg: bad.msg, noStore: true})
	}
	cases = append(cases, badBodies("/orders", nil)...)
	runSeamCases(t, cases)
}

// jsonString is v as JSON, for a search in it.
func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestGetOrderHandler(t *testing.T) {
	const no = "SEAM000002"
	paid := func(f *seam) { f.st.put(no, payment.StatusPaid, 100) }
	runSeamCases(t, []seamCase{
		{name: "200 order with its logs", method: http.MethodGet, path: "/orders/" + no, setup: paid, status: http.StatusOK,
			json: map[string]any{"out_trade_no": no, "status": "PAID", "transaction_id": "4200000000" + no, "paid_at": "2026-11-26T09:30:00Z",
				"amount_fen": 100, "currency": "CNY", "notifications": []any{}, "refunds": []any{}, "refunded_fen": 0, "paid_fen": 100},
			check: func(t *testing.T, _ *seam, body []byte) {
				var o payment.Order
				_ = json.Unmarshal(body, &o)
				if len(o.Logs) != 2 || o.Logs[0].ToStatus != payment.StatusPending || o.Logs[1].ToStatus != payment.StatusPaid {
					t.Errorf("logs %+v, want PENDING then PAID, oldest first", o.Logs)
				}
			}},
		{name: "404 unknown order", method: http.MethodGet, path: "/orders/" + no, status: http.StatusNotFound, errMsg: "no such order"},
		{name: "404 out_trade_no too short: not looked up", method: http.MethodGet, path: "/orders/ABCDE", status: http.StatusNotFound, errMsg: "no such order", noStore: true},
		{name: "404 out_trade_no too long: not looked up", method: http.MethodGet, path: "/orders/" + strings.Repeat("Z", 33), status: http.StatusNotFound, errMsg: "no such order", noStore: true},
		{name: "404 out_trade_no with a space: not looked up", method: http.MethodGet, path: "/orders/SEAM%2000002", status: http.StatusNotFound, errMsg: "no such order", noStore: true},
		{name: "500 store down", method: http.MethodGet, path: "/orders/" + no, setup: func(f *seam) { f.st.failGet = errors.New(internalDetail) },
			status: http.StatusInternalServerError, errMsg: "could not read the order"},
		{name: "405 DELETE", method: http.MethodDelete, path: "/orders/" + no, setup: paid, status: http.StatusMethodNotAllowed, noStore: true},
	})
}

func TestCloseOrderHandler(t *testing.T) {
	const no, path = "SEAM000003", "/orders/SEAM000003/close"
	update := "update payment/" + no + " close"
	pending := func(f *seam) { f.st.put(no, payment.StatusPending, 100) }
	// closes is the workflow closing the order while the api waits.
	closes := func(f *seam) {
		pending(f)
		f.tc.answers[workflows.UpdateClose] = func([]any) (any, error) {
			f.st.setStatus(no, payment.StatusClosed)
			return workflows.CloseResult{Status: payment.StatusClosed}, nil
		}
	}
	refused := func(typ, msg string) func(f *seam) {
		return func(f *seam) { pending(f); f.tc.answers[workflows.UpdateClose] = refuse(typ, msg) }
	}
	cases := []seamCase{
		{name: "200 closed at WeChat first", path: path, setup: closes, status: http.StatusOK,
			json: map[string]any{"out_trade_no": no, "status": "CLOSED"}, temporal: []string{update}},
		{name: "200 closed, body {}", path: path, body: ` {} `, setup: closes, status: http.StatusOK,
			json: map[string]any{"status": "CLOSED"}, temporal: []string{update}},
		{name: "200 already CLOSED: answered again", path: path, setup: func(f *seam) { f.st.put(no, payment.StatusClosed, 100) },
			status: http.StatusOK, json: map[string]any{"status": "CLOSED"}},
		{name: "409 PAID", path: path, setup: func(f *seam) { f.st.put(no, payment.StatusPaid, 100) },
			status: http.StatusConflict, errMsg: "order is PAID; only an unpaid order can be closed"},
		{name: "409 REVIEW", path: path, setup: func(f *seam) { f.st.put(no, payment.StatusReview, 100) },
			status: http.StatusConflict, errMsg: "order is REVIEW; only an unpaid order can be closed"},
		{name: "409 REFUNDED", path: path, setup: func(f *seam) { f.st.put(no, payment.StatusRefunded, 100) },
			status: http.StatusConflict, errMsg: "order is REFUNDED; only an unpaid order can be closed"},
		{name: "409 the payment came first", path: path, setup: func(f *seam) {
			pending(f)
			f.tc.answers[workflows.UpdateClose] = reply(workflows.CloseResult{Status: payment.StatusPaid})
		}, status: http.StatusConflict, errMsg: "order is PAID; the payment came first", temporal: []string{update}},
		{name: "409 the workflow finds it paid", path: path, setup: refused(workflows.ErrTypeAlreadyPaid, "order already paid"),
			status: http.StatusConflict, errMsg: "order already paid", temporal: []string{update}},
		{name: "409 the workflow finds it in review", path: path, setup: refused(workflows.ErrTypeInReview, "order is in review"),
			status: http.StatusConflict, errMsg: "order is in review", temporal: []string{update}},
		{name: "503 the workflow does not own the order yet", path: path, setup: refused(workflows.ErrTypeNotOwned, "retry shortly"),
			status: http.StatusServiceUnavailable, errMsg: "retry shortly", temporal: []string{update}},
		{name: "404 the workflow has no such order", path: path, setup: refused(workflows.ErrTypeNoOrder, "no such order"),
			status: http.StatusNotFound, errMsg: "no such order", temporal: []string{update}},
		{name: "503 WeChat has not confirmed the close in time", path: path, setup: pending,
			status: http.StatusServiceUnavailable, errMsg: "the close did not finish in time; retry", temporal: []string{update}},
		{name: "404 unknown order", path: path, status: http.StatusNotFound, errMsg: "no such order"},
		{name: "404 bad out_trade_no: not looked up", path: "/orders/A.B.C.D/close", status: http.StatusNotFound, errMsg: "no such order", noStore: true},
		{name: "500 store down", path: path, setup: func(f *seam) { f.st.failGet = errors.New(internalDetail) },
			status: http.StatusInternalServerError, errMsg: "could not read the order"},
		{name: "405 GET", method: http.MethodGet, path: path, setup: pending, status: http.StatusMethodNotAllowed, noStore: true},
	}
	for _, b := range []string{`{"reason":"x"}`, `{}}`, `[]`, `x`, `null`, `{}{}`} {
		cases = append(cases, seamCase{name: "400 body " + b, path: path, body: b, setup: pending,
			status: http.StatusBadRequest, errMsg: "this endpoint takes no body or {}", noStore: true})
	}
	runSeamCases(t, cases)
}

func TestSyncOrderHandler(t *testing.T) {
	const no, path = "SEAM000004", "/orders/SEAM000004/sync"
	pending := func(f *seam) { f.st.put(no, payment.StatusPending, 100) }
	cases := []seamCase{
		{name: "202 asking WeChat now", path: path, setup: pending, status: http.StatusAccepted,
			json:     map[string]any{"out_trade_no": no, "status": "PENDING", "message": "asking WeChat Pay now"},
			temporal: []string{"signal payment/" + no + " sync"}},
		{name: "503 the workflow cannot be reached", path: path, setup: func(f *seam) { pending(f); f.tc.failSignal = errors.New(internalDetail) },
			status: http.StatusServiceUnavailable, errMsg: "could not reach the order's workflow; retry",
			temporal: []string{"signal payment/" + no + " sync"}},
		{name: "404 unknown order", path: path, status: http.StatusNotFound, errMsg: "no such order"},
		{name: "404 bad out_trade_no: not looked up", path: "/orders/x/sync", status: http.StatusNotFound, errMsg: "no such order", noStore: true},
		{name: "400 a body", path: path, body: `{"now":true}`, setup: pending, status: http.StatusBadRequest, errMsg: "this endpoint takes no body", noStore: true},
	}
	for _, s := range []payment.Status{payment.StatusPaid, payment.StatusClosed, payment.StatusReview, payment.StatusRefunded} {
		cases = append(cases, seamCase{name: "202 " + string(s) + ": nothing to ask", path: path,
			setup: func(f *seam) { f.st.put(no, s, 100) }, status: http.StatusAccepted,
			json: map[string]any{"out_trade_no": no, "status": string(s), "message": "the order is decided; nothing to ask"}})
	}
	runSeamCases(t, cases)
}

func TestCreateRefundHandler(t *testing.T) {
	const no, path = "SEAM000005", "/orders/SEAM000005/refunds"
	paid := func(f *seam) { f.st.put(no, payment.StatusPaid, 1000) }
	refund := func(refundNo string, amount int64) payment.Refund {
		return payment.Refund{OutRefundNo: refundNo, OutTradeNo: no, AmountFen: amount, Status: payment.RefundProcessing,
			Reason: "broken cup", Source: payment.RefundSourceAPI, CreatedAt: seamNow, UpdatedAt: seamNow}
	}
	// accepts is the workflow accepting the refund it is asked for.
	accepts := func(f *seam) {
		paid(f)
		f.tc.answers[workflows.UpdateRefund] = func(args []any) (any, error) {
			req := args[0].(workflows.RefundRequest)
			r := refund(req.OutRefundNo, req.AmountFen)
			r.Reason = req.Reason
			return workflows.RefundResult{Refund: r, Created: true}, nil
		}
	}
	refused := func(typ, msg string) func(f *seam) {
		return func(f *seam) { paid(f); f.tc.answers[workflows.UpdateRefund] = refuse(typ, msg) }
	}
	update := "update payment/" + no + " refund refund/RF1/*"
	body := `{"out_refund_no":"RF1","amount_fen":300,"reason":"broken cup"}`
	cases := []seamCase{
		{name: "201 accepted", path: path, body: body, setup: accepts, status: http.StatusCreated,
			json: map[string]any{"out_refund_no": "RF1", "out_trade_no": no, "amount_fen": 300, "status": "PROCESSING",
				"reason": "broken cup", "source": "api", "refund_id": "", "success_time": nil},
			check: func(t *testing.T, f *seam, _ []byte) {
				want := workflows.RefundRequest{OutRefundNo: "RF1", AmountFen: 300, Reason: "broken cup"}
				if got := f.tc.updateArgs[0]; len(got) != 1 || got[0] != want {
					t.Errorf("update args %+v, want %+v", got, want)
				}
			},
			temporal: []string{update}},
		{name: "201 generated out_refund_no", path: path, body: `{"amount_fen":300}`, setup: accepts, status: http.StatusCreated,
			check: func(t *testing.T, f *seam, body []byte) {
				var r payment.Refund
				_ = json.Unmarshal(body, &r)
				if !regexp.MustCompile(`^RF20261126100000[0-9]{10}$`).MatchString(r.OutRefundNo) || !strings.HasPrefix(f.tc.calls[0], "update payment/"+no+" refund refund/"+r.OutRefundNo+"/") {
					t.Errorf("generated %q, asked %q", r.OutRefundNo, f.tc.calls)
				}
			},
			temporal: []string{"update payment/" + no + " refund refund/RF20261126100000*"}},
		{name: "201 longest out_refund_no, every symbol; reason of 80", path: path,
			body:  `{"out_refund_no":"` + strings.Repeat("9", 59) + `_-|*@","amount_fen":1,"reason":"` + strings.Repeat("退", 80) + `"}`,
			setup: accepts, status: http.StatusCreated, json: map[string]any{"out_refund_no": strings.Repeat("9", 59) + "_-|*@"},
			temporal: []string{"update payment/" + no + " refund refund/" + strings.Repeat("9", 59) + "_-|*@/*"}},
		{name: "200 repeat of an accepted refund: as it is now, WeChat not asked again", path: path, body: body,
			setup: func(f *seam) {
				paid(f)
				r := refund("RF1", 300)
				r.Status, r.RefundID = payment.RefundSuccess, "50300000RF1"
				f.st.putRefund(r)
			},
			status: http.StatusOK, json: map[string]any{"out_refund_no": "RF1", "status": "SUCCESS", "refund_id": "50300000RF1"}},
		{name: "200 repeat of a refund WeChat has not taken: the workflow is reminded (its update may have been lost)", path: path, body: body,
			setup: func(f *seam) {
				paid(f)
				f.st.putRefund(refund("RF1", 300))
				f.tc.answers[workflows.UpdateRefund] = reply(workflows.RefundResult{Refund: refund("RF1", 300), Created: false})
			},
			status: http.StatusOK, json: map[string]any{"out_refund_no": "RF1", "status": "PROCESSING"}, temporal: []string{update}},
		{name: "200 repeat of a refund WeChat has not taken, the workflow unreachable: the refund as it is", path: path, body: body,
			setup:  func(f *seam) { paid(f); f.st.putRefund(refund("RF1", 300)) },
			status: http.StatusOK, json: map[string]any{"out_refund_no": "RF1", "status": "PROCESSING"}, temporal: []string{update}},
		{name: "409 repeat with another amount", path: path, body: `{"out_refund_no":"RF1","amount_fen":301}`,
			setup:  func(f *seam) { paid(f); f.st.putRefund(refund("RF1", 300)) },
			status: http.StatusConflict, errMsg: "out_refund_no RF1 was used before with another amount"},
		{name: "200 repeat the workflow recognises", path: path, body: body, setup: func(f *seam) {
			paid(f)
			f.tc.answers[workflows.UpdateRefund] = reply(workflows.RefundResult{Refund: refund("RF1", 300), Created: false})
		}, status: http.StatusOK, json: map[string]any{"out_refund_no": "RF1", "status": "PROCESSING"}, temporal: []string{update}},
		{name: "409 out_refund_no used on another order", path: path, body: body,
			setup:  refused(workflows.ErrTypeRefundConflict, "out_refund_no RF1 already used with another amount or order"),
			status: http.StatusConflict, errMsg: "already used with another amount or order", temporal: []string{update}},
		{name: "409 not refundable", path: path, body: body, setup: refused(workflows.ErrTypeNotRefundable, "refund exceeds what is left to refund"),
			status: http.StatusConflict, errMsg: "refund exceeds what is left", temporal: []string{update}},
		{name: "501 the workflow's worker has no refunds", path: path, body: body,
			setup:  refused(workflows.ErrTypeRefundsUnavailable, "refunds need API v3 credentials"),
			status: http.StatusNotImplemented, errMsg: "refunds need API v3 credentials", temporal: []string{update}},
		{name: "404 the workflow has no such order", path: path, body: body, setup: refused(workflows.ErrTypeNoOrder, "no such order"),
			status: http.StatusNotFound, errMsg: "no such order", temporal: []string{update}},
		{name: "400 the workflow's validator", path: path, body: body, setup: refused(workflows.ErrTypeBadRequest, "amount_fen must be an integer > 0"),
			status: http.StatusBadRequest, errMsg: "amount_fen must be", temporal: []string{update}},
		{name: "503 the workflow does not own the order yet", path: path, body: body, setup: refused(workflows.ErrTypeNotOwned, "retry shortly"),
			status: http.StatusServiceUnavailable, errMsg: "retry shortly", temporal: []string{update}},
		{name: "503 an unlisted failure, answered in our words", path: path, body: body, setup: refused("ActivityPanic", internalDetail),
			status: http.StatusServiceUnavailable, errMsg: "retry with the same out_refund_no RF1", temporal: []string{update}},
		{name: "503 the refund could not be read: the workflow is not asked (a repeat would get the first update's answer, 201)", path: path, body: body,
			setup: func(f *seam) {
				accepts(f)
				f.st.failRefund = errors.New(internalDetail)
			},
			status: http.StatusServiceUnavailable, errMsg: "could not read the refund; retry with the same out_refund_no RF1"},
		{name: "503 not accepted in time", path: path, body: body, setup: paid,
			status: http.StatusServiceUnavailable, errMsg: "the refund could not be accepted in time; retry with the same out_refund_no RF1", temporal: []string{update}},
		{name: "501 refunds not configured", path: path, body: body,
			setup: func(f *seam) {
				paid(f)
				f.srv.RefundsUnavailable = "refunds need API v3 credentials (WECHATPAY_APIV3_KEY, …)"
			},
			status: http.StatusNotImplemented, errMsg: "refunds need API v3 credentials", noStore: true},
		{name: "404 unknown order", path: path, body: body, status: http.StatusNotFound, errMsg: "no such order"},
		{name: "404 bad out_trade_no: not looked up", path: "/orders/12345/refunds", body: body, status: http.StatusNotFound, errMsg: "no such order", noStore: true},
	}
	for _, bad := range []struct{ name, body, msg string }{
		{"out_refund_no of 65", `{"out_refund_no":"` + strings.Repeat("R", 65) + `","amount_fen":1}`, "out_refund_no must be 1-64"},
		{"out_refund_no with a space", `{"out_refund_no":"R F","amount_fen":1}`, "out_refund_no must be 1-64"},
		{"out_refund_no with a hash", `{"out_refund_no":"RF#1","amount_fen":1}`, "out_refund_no must be 1-64"},
		{"out_refund_no with a slash", `{"out_refund_no":"RF/1","amount_fen":1}`, "out_refund_no must be 1-64"},
		{"out_refund_no not ASCII", `{"out_refund_no":"退款1","amount_fen":1}`, "out_refund_no must be 1-64"},
		{"amount 0", `{"out_refund_no":"RF1","amount_fen":0}`, "amount_fen must be an integer > 0"},
		{"amount negative", `{"out_refund_no":"RF1","amount_fen":-300}`, "amount_fen must be an integer > 0"},
		{"amount missing", `{"out_refund_no":"RF1"}`, "amount_fen must be an integer > 0"},
		{"reason of 81", `{"amount_fen":1,"reason":"` + strings.Repeat("退", 81) + `"}`, "reason must be valid UTF-8 of at most 80"},
		{"not UTF-8", "{\"amount_fen\":1,\"reason\":\"\xff\"}", "UTF-8"},
	} {
		cases = append(cases, seamCase{name: "400 " + bad.name, path: path, body: bad.body, setup: accepts,
			status: http.StatusBadRequest, errMsg: bad.msg, noStore: true})
	}
	cases = append(cases, badBodies(path, accepts)...)
	runSeamCases(t, cases)
}

func TestGetRefundHandler(t *testing.T) {
	const no = "SEAM000006"
	done := time.Date(2026, 11, 26, 9, 45, 0, 0, time.UTC)
	stored := func(f *seam) {
		f.st.put(no, payment.StatusRefunded, 100)
		f.st.putRefund(payment.Refund{OutRefundNo: "RF6", OutTradeNo: no, RefundID: "50300000RF6", AmountFen: 100, Status: payment.RefundSuccess,
			Reason: "r", Source: payment.RefundSourcePortal, CreatedAt: seamNow.Add(-time.Hour), UpdatedAt: done, SuccessTime: &done})
	}
	runSeamCases(t, []seamCase{
		{name: "200 refund", method: http.MethodGet, path: "/orders/" + no + "/refunds/RF6", setup: stored, status: http.StatusOK,
			json: map[string]any{"out_refund_no": "RF6", "out_trade_no": no, "refund_id": "50300000RF6", "amount_fen": 100,
				"status": "SUCCESS", "reason": "r", "source": "merchant_portal", "success_time": "2026-11-26T09:45:00Z",
				"created_at": "2026-11-26T09:00:00Z", "updated_at": "2026-11-26T09:45:00Z"}},
		{name: "404 unknown refund", method: http.MethodGet, path: "/orders/" + no + "/refunds/RF7", setup: stored, status: http.StatusNotFound, errMsg: "no such refund"},
		{name: "404 the refund of another order", method: http.MethodGet, path: "/orders/SEAM000007/refunds/RF6", setup: stored, status: http.StatusNotFound, errMsg: "no such refund"},
		{name: "404 bad out_refund_no: not looked up", method: http.MethodGet, path: "/orders/" + no + "/refunds/" + strings.Repeat("R", 65), setup: stored,
			status: http.StatusNotFound, errMsg: "no such refund", noStore: true},
		{name: "404 bad out_trade_no: not looked up", method: http.MethodGet, path: "/orders/SEAM/refunds/RF6", setup: stored,
			status: http.StatusNotFound, errMsg: "no such refund", noStore: true},
		{name: "500 store down", method: http.MethodGet, path: "/orders/" + no + "/refunds/RF6", setup: func(f *seam) { f.st.failRefund = errors.New(internalDetail) },
			status: http.StatusInternalServerError, errMsg: "could not read the refund"},
	})
}

func TestResolveOrderHandler(t *testing.T) {
	const no, path = "SEAM000008", "/orders/SEAM000008/resolve"
	update := "update payment/" + no + " resolve"
	review := func(f *seam) { f.st.put(no, payment.StatusReview, 100) }
	// resolves is the workflow resolving the order as asked.
	resolves := func(f *seam) {
		review(f)
		f.tc.answers[workflows.UpdateResolve] = func(args []any) (any, error) {
			to := map[string]payment.Status{workflows.ResolveAcceptPaid: payment.StatusPaid, workflows.ResolveClose: payment.StatusClosed,
				workflows.ResolveRefund: payment.StatusReview}[args[0].(workflows.ResolveRequest).Action]
			if to != payment.StatusReview {
				f.st.setStatus(no, to)
			}
			return workflows.ResolveResult{Status: to}, nil
		}
	}
	refused := func(typ, msg string) func(f *seam) {
		return func(f *seam) { review(f); f.tc.answers[workflows.UpdateResolve] = refuse(typ, msg) }
	}
	body := `{"action":"accept_paid","operator":"alice@finance","reason":"customer confirmed the payment"}`
	cases := []seamCase{
		{name: "200 accept_paid", path: path, body: body, setup: resolves, status: http.StatusOK,
			json: map[string]any{"out_trade_no": no, "status": "PAID"},
			check: func(t *testing.T, f *seam, _ []byte) {
				want := workflows.ResolveRequest{Action: "accept_paid", Operator: "alice@finance", Reason: "customer confirmed the payment"}
				if got := f.tc.updateArgs[0]; len(got) != 1 || got[0] != want {
					t.Errorf("update args %+v, want %+v", got, want)
				}
			},
			temporal: []string{update}},
		{name: "200 close", path: path, body: `{"action":"close","operator":"bob","reason":"no money moved"}`, setup: resolves,
			status: http.StatusOK, json: map[string]any{"status": "CLOSED"}, temporal: []string{update}},
		{name: "200 refund: in REVIEW until the refund succeeds", path: path, body: `{"action":"refund","operator":"bob","reason":"paid after close"}`,
			setup: resolves, status: http.StatusOK, json: map[string]any{"status": "REVIEW"}, temporal: []string{update}},
		{name: "409 not in REVIEW", path: path, body: body, setup: func(f *seam) { f.st.put(no, payment.StatusPaid, 100) },
			status: http.StatusConflict, errMsg: "order is PAID; only an order in REVIEW is resolved"},
		{name: "409 cannot be resolved that way", path: path, body: body,
			setup:  refused(workflows.ErrTypeCannot, "order SEAM000008 has no transaction: nothing was paid that could be accepted"),
			status: http.StatusConflict, errMsg: "has no transaction", temporal: []string{update}},
		{name: "409 resolved meanwhile", path: path, body: body, setup: refused(workflows.ErrTypeNotInReview, "order SEAM000008 is CLOSED, not in REVIEW"),
			status: http.StatusConflict, errMsg: "not in REVIEW", temporal: []string{update}},
		{name: "400 the workflow's validator", path: path, body: body, setup: refused(workflows.ErrTypeBadRequest, "reason is required"),
			status: http.StatusBadRequest, errMsg: "reason is required", temporal: []string{update}},
		{name: "503 the workflow does not own the order yet", path: path, body: body, setup: refused(workflows.ErrTypeNotOwned, "retry shortly"),
			status: http.StatusServiceUnavailable, errMsg: "retry shortly", temporal: []string{update}},
		{name: "503 not finished in time", path: path, body: body, setup: review,
			status: http.StatusServiceUnavailable, errMsg: "the resolution did not finish in time", temporal: []string{update}},
		{name: "404 unknown order", path: path, body: body, status: http.StatusNotFound, errMsg: "no such order"},
	}
	for _, bad := range []struct{ name, body, msg string }{
		{"unknown action", `{"action":"pay","operator":"a","reason":"b"}`, "action must be accept_paid, close or refund"},
		{"action in upper case", `{"action":"ACCEPT_PAID","operator":"a","reason":"b"}`, "action must be accept_paid, close or refund"},
		{"no action", `{"operator":"a","reason":"b"}`, "action must be accept_paid, close or refund"},
		{"no operator", `{"action":"close","reason":"b"}`, "operator (who resolves it) is required"},
		{"blank operator", `{"action":"close","operator":"  ","reason":"b"}`, "operator (who resolves it) is required"},
		{"operator of 65", `{"action":"close","operator":"` + strings.Repeat("o", 65) + `","reason":"b"}`, "operator (who resolves it) is required, at most 64"},
		{"no reason", `{"action":"close","operator":"a"}`, "reason is required"},
		{"blank reason", `{"action":"close","operator":"a","reason":"\t"}`, "reason is required"},
		{"reason of 257", `{"action":"close","operator":"a","reason":"` + strings.Repeat("r", 257) + `"}`, "reason is required, at most 256"},
		{"trailing data", `{"action":"close","operator":"a","reason":"b"}}`, "exactly one JSON object"},
		{"two objects", `{"action":"close","operator":"a","reason":"b"}{}`, "exactly one JSON object"},
		{"unknown field", `{"action":"close","operator":"a","reason":"b","force":true}`, `unknown field "force"`},
		{"wrong type", `{"action":1,"operator":"a","reason":"b"}`, "action must be a string"},
		{"null", `{"action":"close","operator":null,"reason":"b"}`, "operator must not be null"},
	} {
		cases = append(cases, seamCase{name: "400 " + bad.name, path: path, body: bad.body, setup: resolves,
			status: http.StatusBadRequest, errMsg: bad.msg, noStore: true})
	}
	runSeamCases(t, cases)
}

func TestInboxHandlers(t *testing.T) {
	at := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	rows := func(f *seam) {
		f.st.inbox = []store.InboxRow{
			{ID: "N-parked", OutTradeNo: "SEAM000009", State: "parked", Attempts: 10, LastError: "workflow failed", ReceivedAt: at},
			{ID: "N-pending", OutTradeNo: "SEAM000010", State: "pending", Attempts: 2, ReceivedAt: at},
		}
	}
	cases := []seamCase{
		{name: "200 parked rows by default", method: http.MethodGet, path: "/inbox", setup: rows, status: http.StatusOK,
			json: map[string]any{"state": "parked", "rows": []any{map[string]any{"id": "N-parked", "out_trade_no": "SEAM000009",
				"state": "parked", "attempts": 10, "last_error": "workflow failed", "received_at": "2026-11-26T09:00:00Z"}}},
			check: func(t *testing.T, f *seam, _ []byte) {
				if !slices.Equal(f.st.calls, []string{"inbox parked 100"}) {
					t.Errorf("store asked %q", f.st.calls)
				}
			}},
		{name: "200 pending rows, a limit", method: http.MethodGet, path: "/inbox?state=pending&limit=5", setup: rows, status: http.StatusOK,
			json: map[string]any{"state": "pending"},
			check: func(t *testing.T, f *seam, _ []byte) {
				if !slices.Equal(f.st.calls, []string{"inbox pending 5"}) {
					t.Errorf("store asked %q", f.st.calls)
				}
			}},
		{name: "200 none: an empty list", method: http.MethodGet, path: "/inbox?limit=1000", status: http.StatusOK,
			json: map[string]any{"state": "parked", "rows": []any{}}},
		{name: "200 limit 1", method: http.MethodGet, path: "/inbox?limit=1", setup: rows, status: http.StatusOK},
		{name: "500 store down", method: http.MethodGet, path: "/inbox", setup: func(f *seam) { f.st.failInbox = errors.New(internalDetail) },
			status: http.StatusInternalServerError, errMsg: "could not read the inbox"},

		{name: "202 re-driven", path: "/inbox/N-parked/redrive", setup: rows, status: http.StatusAccepted,
			json: map[string]any{"id": "N-parked", "state": "pending"}, writes: []string{"redrive N-parked"}},
		{name: "202 re-driven, body {}", path: "/inbox/N-parked/redrive", body: `{}`, setup: rows, status: http.StatusAccepted,
			writes: []string{"redrive N-parked"}},
		{name: "404 a pending row", path: "/inbox/N-pending/redrive", setup: rows, status: http.StatusNotFound, errMsg: "no parked inbox row with that id"},
		{name: "404 unknown row", path: "/inbox/N-none/redrive", setup: rows, status: http.StatusNotFound, errMsg: "no parked inbox row with that id"},
		{name: "500 store down", path: "/inbox/N-parked/redrive", setup: func(f *seam) { rows(f); f.st.failRedrive = errors.New(internalDetail) },
			status: http.StatusInternalServerError, errMsg: "could not re-drive the row"},
		{name: "400 a body", path: "/inbox/N-parked/redrive", body: `{"force":true}`, setup: rows,
			status: http.StatusBadRequest, errMsg: "this endpoint takes no body", noStore: true},
		{name: "405 GET redrive", method: http.MethodGet, path: "/inbox/N-parked/redrive", setup: rows, status: http.StatusMethodNotAllowed, noStore: true},
	}
	for _, q := range []string{"state=done", "state=PARKED", "limit=0", "limit=1001", "limit=-1", "limit=x", "limit=1.5"} {
		msg := "limit must be 1-1000"
		if strings.HasPrefix(q, "state=") && !strings.Contains(q, "limit") {
			msg = "state must be parked or pending"
		}
		cases = append(cases, seamCase{name: "400 " + q, method: http.MethodGet, path: "/inbox?" + q, setup: rows,
			status: http.StatusBadRequest, errMsg: msg, noStore: true})
	}
	runSeamCases(t, cases)
}

func TestProbeHandlers(t *testing.T) {
	runSeamCases(t, []seamCase{
		{name: "healthz", method: http.MethodGet, path: "/healthz", status: http.StatusOK, json: map[string]any{"status": "ok"}},
		{name: "healthz while everything is down", method: http.MethodGet, path: "/healthz", setup: func(f *seam) {
			f.st.failPing, f.tc.failHealth = errors.New(internalDetail), errors.New(internalDetail)
		}, status: http.StatusOK, json: map[string]any{"status": "ok"}},
		{name: "readyz", method: http.MethodGet, path: "/readyz", status: http.StatusOK,
			json: map[string]any{"postgres": "ok", "temporal": "ok"}},
		{name: "readyz without PostgreSQL", method: http.MethodGet, path: "/readyz", setup: func(f *seam) { f.st.failPing = errors.New(internalDetail) },
			status: http.StatusServiceUnavailable, json: map[string]any{"postgres": "unreachable", "temporal": "ok"}},
		{name: "readyz without Temporal", method: http.MethodGet, path: "/readyz", setup: func(f *seam) { f.tc.failHealth = errors.New(internalDetail) },
			status: http.StatusServiceUnavailable, json: map[string]any{"postgres": "ok", "temporal": "unreachable"}},
		{name: "readyz without either", method: http.MethodGet, path: "/readyz", setup: func(f *seam) {
			f.st.failPing, f.tc.failHealth = errors.New(internalDetail), errors.New(internalDetail)
		}, status: http.StatusServiceUnavailable, json: map[string]any{"postgres": "unreachable", "temporal": "unreachable"}},
		{name: "metrics", method: http.MethodGet, path: "/metrics", status: http.StatusOK,
			check: func(t *testing.T, _ *seam, body []byte) {
				for _, name := range []string{metrics.OrdersFinalName, metrics.NotificationsRejectedName, metrics.WeChatFaultsName} {
					if !strings.Contains(string(body), "\n"+name+"{") {
						t.Errorf("/metrics has no %s", name)
					}
				}
			}},
		{name: "metrics not served without a handler", method: http.MethodGet, path: "/metrics", setup: func(f *seam) { f.srv.MetricsHandler = nil },
			status: http.StatusNotFound},
	})
}

// v2Reply is an API v2 answer to WeChat.
type v2Reply struct {
	ReturnCode string `xml:"return_code"`
	ReturnMsg  string `xml:"return_msg"`
}

// v2Answers checks a v2 notify answer: XML with return_code and msg.
func v2Answers(code, msg string) func(t *testing.T, f *seam, body []byte) {
	return func(t *testing.T, _ *seam, body []byte) {
		t.Helper()
		var r v2Reply
		if err := xml.Unmarshal(body, &r); err != nil || r.ReturnCode != code || !strings.Contains(r.ReturnMsg, msg) {
			t.Errorf("v2 answer %s, want return_code %s saying %q", body, code, msg)
		}
	}
}

// v3Fails checks a v3 notify failure: exactly {"code":"FAIL","message"}.
func v3Fails(msg string) func(t *testing.T, f *seam, body []byte) {
	return func(t *testing.T, _ *seam, body []byte) {
		t.Helper()
		var r map[string]string
		if err := json.Unmarshal(body, &r); err != nil || len(r) != 2 || r["code"] != "FAIL" || !strings.Contains(r["message"], msg) {
			t.Errorf("v3 answer %s, want {\"code\":\"FAIL\",\"message\"} saying %q", body, msg)
		}
	}
}

func TestNotifyHandlers(t *testing.T) {
	pay := payment.Notification{ID: "N-pay", Source: payment.SourceV3, OutTradeNo: "SEAM000011", TransactionID: "4200000011",
		AppID: testAppID, MchID: testMchID, AmountFen: 100, ResultCode: "SUCCESS", Kind: payment.KindPayment}
	refundN := pay
	refundN.ID, refundN.Kind, refundN.Refund = "N-refund", payment.KindRefund, &payment.RefundFacts{OutRefundNo: "RF11", Status: payment.RefundSuccess}
	other := payment.Notification{ID: "N-other", Source: payment.SourceV3, Kind: payment.KindOther, EventType: "COUPON.USE"}
	parses := func(n payment.Notification) func(f *seam) {
		return func(f *seam) { f.v2.n, f.v3.n = n, n }
	}
	parserFails := func(err error) func(f *seam) {
		return func(f *seam) { f.v2.err, f.v3.err = err, err }
	}
	const v2, v3 = "/wechatpay/notify", "/wechatpay/v3/notify"
	runSeamCases(t, []seamCase{
		{name: "v2 200 SUCCESS once handed over", path: v2, body: "<xml/>", setup: parses(pay), status: http.StatusOK,
			check: v2Answers("SUCCESS", "OK"), writes: []string{"handoff N-pay"}},
		{name: "v2 refund handed over", path: v2, body: "<xml/>", setup: parses(refundN), status: http.StatusOK,
			check: v2Answers("SUCCESS", "OK"), writes: []string{"handoff N-refund"}},
		{name: "v2 503 FAIL when not recorded", path: v2, body: "<xml/>",
			setup:  func(f *seam) { parses(pay)(f); f.handoff.fail = errors.New(internalDetail) },
			status: http.StatusServiceUnavailable, check: v2Answers("FAIL", "could not record the notification, retry later")},
		{name: "v2 401 FAIL bad signature: nothing handed over", path: v2, body: "<xml/>", setup: parserFails(wechatpay.ErrBadSignature),
			status: http.StatusUnauthorized, check: v2Answers("FAIL", "invalid signature")},
		{name: "v2 413 too large: not parsed", path: v2, body: strings.Repeat("x", maxNotifyBody+1), setup: parses(pay),
			status: http.StatusRequestEntityTooLarge, check: func(t *testing.T, f *seam, body []byte) {
				v2Answers("FAIL", "body too large")(t, f, body)
				if f.v2.calls != 0 {
					t.Error("a body over the limit was parsed")
				}
			}},
		{name: "v2 503 not configured", path: v2, body: "<xml/>", setup: func(f *seam) { f.srv.V2 = nil },
			status: http.StatusServiceUnavailable, check: v2Answers("FAIL", "not configured")},

		{name: "v3 204 once handed over", path: v3, body: "{}", setup: parses(pay), status: http.StatusNoContent,
			check: func(t *testing.T, _ *seam, body []byte) {
				if len(body) != 0 {
					t.Errorf("204 with a body %q", body)
				}
			}, writes: []string{"handoff N-pay"}},
		{name: "v3 refund handed over", path: v3, body: "{}", setup: parses(refundN), status: http.StatusNoContent, writes: []string{"handoff N-refund"}},
		{name: "v3 other event: audited as ignored, handed to no workflow", path: v3, body: "{}", setup: parses(other),
			status: http.StatusNoContent, writes: []string{"audit N-other ignored"}},
		{name: "v3 other event, audit trail down", path: v3, body: "{}", setup: func(f *seam) { parses(other)(f); f.st.failAudit = errors.New(internalDetail) },
			status: http.StatusServiceUnavailable, check: v3Fails("could not record the notification, retry later")},
		{name: "v3 503 when not recorded", path: v3, body: "{}", setup: func(f *seam) { parses(pay)(f); f.handoff.fail = errors.New(internalDetail) },
			status: http.StatusServiceUnavailable, check: v3Fails("could not record the notification, retry later")},
		{name: "v3 401 stale: nothing handed over", path: v3, body: "{}", setup: parserFails(wechatpay.ErrStaleTimestamp),
			status: http.StatusUnauthorized, check: v3Fails("timestamp outside the 5-minute window")},
		{name: "v3 403 foreign: nothing handed over", path: v3, body: "{}", setup: parserFails(wechatpay.ErrForeign),
			status: http.StatusForbidden, check: v3Fails("not this merchant's")},
		{name: "v3 413 too large: not parsed", path: v3, body: strings.Repeat("x", maxNotifyBody+1), setup: parses(pay),
			status: http.StatusRequestEntityTooLarge, check: v3Fails("body too large")},
		{name: "v3 503 not configured", path: v3, body: "{}", setup: func(f *seam) { f.srv.V3 = nil },
			status: http.StatusServiceUnavailable, check: v3Fails("not configured")},
		{name: "405 GET", method: http.MethodGet, path: v3, setup: parses(pay), status: http.StatusMethodNotAllowed, noStore: true},
	})
}
