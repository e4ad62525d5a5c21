package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

const (
	testAppID = "wx2421b1c4370ec43b"
	testMchID = "10000100"
	testKey   = "192006250b4c09247ec02edce69f6a2d"
)

var goodReply = string(apiv2.Reply(true, ""))

// receiver is a merchant's notify endpoint that records what it gets and
// answers with reply(n) for the n-th request (1-based).
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	reply  func(n int) (int, string)
	srv    *httptest.Server
}

func newReceiver(t *testing.T, reply func(n int) (int, string)) *receiver {
	t.Helper()
	if reply == nil {
		reply = func(int) (int, string) { return http.StatusOK, goodReply }
	}
	rc := &receiver{reply: reply}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		n := len(rc.bodies)
		rc.mu.Unlock()
		status, out := rc.reply(n)
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) received() [][]byte {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([][]byte{}, rc.bodies...)
}

// newSim starts a simulator notifying notifyURL, with retry delays scaled.
func newSim(t *testing.T, notifyURL string, scale float64) string {
	t.Helper()
	s, err := New(Config{AppID: testAppID, MchID: testMchID, APIKey: testKey, NotifyURL: notifyURL, TimeScale: scale}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(s.Close) // runs after srv.Close
	t.Cleanup(srv.Close)
	return srv.URL
}

func postJSON(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func pay(t *testing.T, base string, req PayRequest) PayResponse {
	t.Helper()
	status, body := postJSON(t, base+"/sim/pay", req)
	if status != http.StatusOK {
		t.Fatalf("/sim/pay: %d %s", status, body)
	}
	var out PayResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func getTrade(t *testing.T, base, no string) TradeView {
	t.Helper()
	resp, err := http.Get(base + "/sim/trades/" + no)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET trade: %d", resp.StatusCode)
	}
	var v TradeView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// waitDone waits until the trade has n deliveries, all done.
func waitDone(t *testing.T, base, no string, n int) TradeView {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := getTrade(t, base, no)
		done := len(v.Deliveries) == n
		for _, d := range v.Deliveries {
			done = done && d.Done
		}
		if done {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries not done: %+v", v.Deliveries)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// decodeVerified decodes a v2 notification and checks its sign with the
// test's own rendering of WeChat's rule (refSign), not the client's: the
// algorithm is sign_type, else HMAC-SHA256 for a 64-digit sign.
func decodeVerified(t *testing.T, body []byte) map[string]string {
	t.Helper()
	p, err := apiv2.DecodeXML(body)
	if err != nil {
		t.Fatalf("notification %s: %v", body, err)
	}
	alg := p["sign_type"]
	if alg == "" && len(p["sign"]) == 64 {
		alg = apiv2.SignTypeHMACSHA256
	}
	if p["sign"] == "" || p["sign"] != refSign(p, testKey, alg) {
		t.Fatalf("notification does not verify: %v", p)
	}
	return p
}

func client(base, signType string) *apiv2.Client {
	return &apiv2.Client{BaseURL: base, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(testKey), SignType: signType}
}

func TestPayNotifies(t *testing.T) {
	for _, signType := range []string{apiv2.SignTypeMD5, apiv2.SignTypeHMACSHA256} {
		t.Run(signType, func(t *testing.T) {
			rc := newReceiver(t, nil)
			base := newSim(t, rc.srv.URL, 0.001)
			paid := pay(t, base, PayRequest{OutTradeNo: "order-0001", AmountFen: 123, SignType: signType})
			if paid.TradeState != "SUCCESS" || len(paid.TransactionID) != 28 {
				t.Fatalf("pay answer %+v", paid)
			}
			v := waitDone(t, base, "order-0001", 1)
			if d := v.Deliveries[0]; !d.Delivered || len(d.Attempts) != 1 || !d.Attempts[0].Accepted || d.Attempts[0].HTTPStatus != 200 {
				t.Fatalf("delivery %+v", d)
			}
			bodies := rc.received()
			if len(bodies) != 1 {
				t.Fatalf("received %d notifications", len(bodies))
			}
			p := decodeVerified(t, bodies[0])
			// As WeChat: no sign_type for an HMAC-SHA256 trade (the sign is
			// 64 hex digits), sign_type=MD5 for some MD5 trades.
			wantField := signType == apiv2.SignTypeMD5 && md5CarriesSignType("order-0001")
			if _, has := p["sign_type"]; has != wantField || (has && p["sign_type"] != signType) {
				t.Errorf("sign_type = %q", p["sign_type"])
			}
			if want := map[string]int{apiv2.SignTypeMD5: 32, apiv2.SignTypeHMACSHA256: 64}[signType]; len(p["sign"]) != want {
				t.Errorf("sign of %d characters, want %d", len(p["sign"]), want)
			}
			for _, k := range []string{"appid", "mch_id", "nonce_str", "sign", "result_code", "openid", "is_subscribe",
				"trade_type", "bank_type", "total_fee", "fee_type", "cash_fee", "transaction_id", "out_trade_no", "time_end", "return_code"} {
				if p[k] == "" {
					t.Errorf("notification lacks %s", k)
				}
			}
			n, err := apiv2.PaymentNotification(p)
			if err != nil {
				t.Fatal(err)
			}
			if n.OutTradeNo != "order-0001" || n.AmountFen != 123 || n.TransactionID != paid.TransactionID ||
				n.AppID != testAppID || n.MchID != testMchID || !n.Succeeded() || time.Since(n.PaidAt) > time.Minute {
				t.Errorf("notification %+v", n)
			}
		})
	}
}

func TestOrderQuery(t *testing.T) {
	rc := newReceiver(t, nil)
	base := newSim(t, rc.srv.URL, 0.001)
	paid := pay(t, base, PayRequest{OutTradeNo: "order-0002", AmountFen: 500})
	ctx := context.Background()

	for _, signType := range []string{"", apiv2.SignTypeMD5, apiv2.SignTypeHMACSHA256} {
		tr, err := client(base, signType).QueryOrder(ctx, "order-0002")
		if err != nil {
			t.Fatalf("%s: %v", signType, err)
		}
		if tr.TradeState != payment.TradeSuccess || tr.AmountFen != 500 || tr.TransactionID != paid.TransactionID ||
			tr.Currency != "CNY" || tr.AppID != testAppID || tr.MchID != testMchID || tr.PaidAt.IsZero() {
			t.Errorf("%s: trade %+v", signType, tr)
		}
	}

	_, err := client(base, "").QueryOrder(ctx, "order-unknown")
	if !errors.Is(err, wechatpay.ErrOrderNotExist) || wechatpay.Retryable(err) {
		t.Errorf("unknown trade: err = %v", err)
	}

	wrongKey := client(base, "")
	wrongKey.APIKey = config.NewSecret(strings.Repeat("0", 32))
	var ae *wechatpay.APIError
	if _, err := wrongKey.QueryOrder(ctx, "order-0002"); !errors.As(err, &ae) || ae.Code != "SIGNERROR" || ae.Message != "签名错误" || !isFault(err, wechatpay.FaultConfig) {
		t.Errorf("wrong key: err = %v", err)
	}

	foreign := client(base, "")
	foreign.MchID = "99999999"
	if _, err := foreign.QueryOrder(ctx, "order-0002"); err == nil {
		t.Error("foreign mch_id: no error")
	}
}

func TestOrderQueryRaw(t *testing.T) {
	base := newSim(t, "http://127.0.0.1:1/notify", 0)
	tests := []struct {
		name, body, wantMsg string
	}{
		{"not XML", "hello", "XML格式错误"},
		{"unsigned", string(apiv2.EncodeXML(map[string]string{"appid": testAppID, "mch_id": testMchID, "out_trade_no": "order-0001"})), "签名错误"},
	}
	for _, tt := range tests {
		resp, err := http.Post(base+"/pay/orderquery", "text/xml", strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		p, err := apiv2.DecodeXML(raw)
		if err != nil || p["return_code"] != "FAIL" || p["return_msg"] != tt.wantMsg {
			t.Errorf("%s: answer %s (%v)", tt.name, raw, err)
		}
	}
}

func TestQueryOverrides(t *testing.T) {
	rc := newReceiver(t, nil)
	base := newSim(t, rc.srv.URL, 0.001)
	pay(t, base, PayRequest{OutTradeNo: "order-0003", AmountFen: 100, QueryState: "NOTPAY", QueryStateTimes: 2, QueryAmountFen: 90})
	c := client(base, "")
	var states []string
	for range 3 {
		tr, err := c.QueryOrder(context.Background(), "order-0003")
		if err != nil {
			t.Fatal(err)
		}
		if tr.AmountFen != 90 {
			t.Errorf("amount %d, want the override 90", tr.AmountFen)
		}
		if tr.TradeState == "NOTPAY" && tr.TransactionID != "" {
			t.Error("NOTPAY answer carries a transaction_id")
		}
		states = append(states, tr.TradeState)
	}
	if got := strings.Join(states, ","); got != "NOTPAY,NOTPAY,SUCCESS" {
		t.Errorf("states %s, want NOTPAY,NOTPAY,SUCCESS", got)
	}
	if v := getTrade(t, base, "order-0003"); v.Queries != 3 || v.QueryStateLeft != 0 {
		t.Errorf("trade view %+v", v)
	}
}

func TestRetriesUntilSuccess(t *testing.T) {
	fail := string(apiv2.Reply(false, "busy"))
	rc := newReceiver(t, func(n int) (int, string) {
		if n <= 2 {
			return http.StatusOK, fail
		}
		return http.StatusOK, goodReply
	})
	base := newSim(t, rc.srv.URL, 0.0001) // 15s -> 1.5ms
	pay(t, base, PayRequest{OutTradeNo: "order-0004", AmountFen: 1})
	v := waitDone(t, base, "order-0004", 1)
	d := v.Deliveries[0]
	if len(d.Attempts) != 3 || !d.Delivered || d.Attempts[0].Accepted || d.Attempts[1].Accepted || !d.Attempts[2].Accepted {
		t.Fatalf("delivery %+v", d)
	}
	bodies := rc.received()
	if len(bodies) != 3 || !bytes.Equal(bodies[0], bodies[2]) {
		t.Errorf("retries differ from the first try")
	}
}

func TestRepliesThatAreNotSuccess(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"plain success", 200, "success"},
		{"plain SUCCESS", 200, "SUCCESS"},
		{"JSON", 200, `{"return_code":"SUCCESS"}`},
		{"HTML", 200, "<html><body>SUCCESS</body></html>"},
		{"FAIL", 200, string(apiv2.Reply(false, "no"))},
		{"HTTP 500 with SUCCESS XML", 500, goodReply},
		{"redirect", 302, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int) (int, string) {
				if n == 1 {
					return tt.status, tt.body
				}
				return http.StatusOK, goodReply
			})
			base := newSim(t, rc.srv.URL, 0.0001)
			pay(t, base, PayRequest{OutTradeNo: "order-0005", AmountFen: 1})
			d := waitDone(t, base, "order-0005", 1).Deliveries[0]
			if len(d.Attempts) != 2 || d.Attempts[0].Accepted || d.Attempts[0].Error == "" || !d.Delivered {
				t.Fatalf("delivery %+v", d)
			}
		})
	}
}

func TestGivesUp(t *testing.T) {
	rc := newReceiver(t, func(int) (int, string) { return http.StatusOK, "success" })
	base := newSim(t, rc.srv.URL, 0)
	pay(t, base, PayRequest{OutTradeNo: "order-0006", AmountFen: 1})
	d := waitDone(t, base, "order-0006", 1).Deliveries[0]
	if want := len(RetrySchedule) + 1; len(d.Attempts) != want || d.Delivered {
		t.Fatalf("%d attempts (delivered %v), want %d undelivered", len(d.Attempts), d.Delivered, want)
	}
}

func TestDuplicates(t *testing.T) {
	for _, concurrent := range []bool{false, true} {
		t.Run(map[bool]string{false: "back to back", true: "concurrent"}[concurrent], func(t *testing.T) {
			rc := newReceiver(t, nil)
			base := newSim(t, rc.srv.URL, 0.001)
			pay(t, base, PayRequest{OutTradeNo: "order-0007", AmountFen: 10, Duplicates: 3, Concurrent: concurrent})
			v := waitDone(t, base, "order-0007", 4)
			for _, d := range v.Deliveries {
				if !d.Delivered || len(d.Attempts) != 1 {
					t.Errorf("delivery %+v", d)
				}
			}
			bodies := rc.received()
			if len(bodies) != 4 {
				t.Fatalf("received %d, want 4", len(bodies))
			}
			for _, b := range bodies[1:] {
				if !bytes.Equal(b, bodies[0]) {
					t.Error("copies differ")
				}
			}
			decodeVerified(t, bodies[0])

			// A late duplicate: the same bytes, a new delivery.
			status, out := postJSON(t, base+"/sim/trades/order-0007/notify", nil)
			if status != http.StatusAccepted {
				t.Fatalf("renotify: %d %s", status, out)
			}
			waitDone(t, base, "order-0007", 5)
			if bodies = rc.received(); len(bodies) != 5 || !bytes.Equal(bodies[4], bodies[0]) {
				t.Error("late duplicate differs")
			}
		})
	}
}

func TestTamper(t *testing.T) {
	tests := []struct {
		tamper string
		check  func(t *testing.T, p map[string]string, verr error)
	}{
		{"amount", func(t *testing.T, p map[string]string, verr error) {
			if !errors.Is(verr, wechatpay.ErrBadSignature) || p["total_fee"] == "100" {
				t.Errorf("forged amount: total_fee %s, verify %v", p["total_fee"], verr)
			}
		}},
		{"sign", func(t *testing.T, p map[string]string, verr error) {
			if !errors.Is(verr, wechatpay.ErrBadSignature) {
				t.Errorf("corrupt sign: verify %v", verr)
			}
		}},
		{"appid", func(t *testing.T, p map[string]string, verr error) {
			if verr != nil || p["appid"] == testAppID {
				t.Errorf("foreign appid: appid %s, verify %v", p["appid"], verr)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.tamper, func(t *testing.T) {
			rc := newReceiver(t, nil)
			base := newSim(t, rc.srv.URL, 0.001)
			pay(t, base, PayRequest{OutTradeNo: "order-0008", AmountFen: 100, Tamper: tt.tamper})
			waitDone(t, base, "order-0008", 1)
			p, err := apiv2.DecodeXML(rc.received()[0])
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, p, apiv2.Verify(p, testKey))
		})
	}
}

func TestFailedPayment(t *testing.T) {
	rc := newReceiver(t, nil)
	base := newSim(t, rc.srv.URL, 0.001)
	paid := pay(t, base, PayRequest{OutTradeNo: "order-0009", AmountFen: 100, ResultCode: "FAIL"})
	if paid.TradeState != "NOTPAY" || paid.TransactionID != "" {
		t.Fatalf("pay answer %+v", paid)
	}
	waitDone(t, base, "order-0009", 1)
	n, err := apiv2.PaymentNotification(decodeVerified(t, rc.received()[0]))
	if err != nil || n.Succeeded() || n.ResultCode != "FAIL" {
		t.Fatalf("notification %+v, %v", n, err)
	}
	tr, err := client(base, "").QueryOrder(context.Background(), "order-0009")
	if err != nil || tr.TradeState != "NOTPAY" {
		t.Fatalf("query %+v, %v", tr, err)
	}
}

func TestOperatorBadInput(t *testing.T) {
	base := newSim(t, "http://127.0.0.1:1/notify", 0)
	tests := []struct {
		name string
		body any
	}{
		{"bad out_trade_no", PayRequest{OutTradeNo: "x", AmountFen: 1}},
		{"no amount for a new trade", PayRequest{OutTradeNo: "order-0010"}},
		{"negative amount", PayRequest{OutTradeNo: "order-0010", AmountFen: -1}},
		{"sign_type", PayRequest{OutTradeNo: "order-0010", AmountFen: 1, SignType: "SHA1"}},
		{"tamper", PayRequest{OutTradeNo: "order-0010", AmountFen: 1, Tamper: "everything"}},
		{"result_code", PayRequest{OutTradeNo: "order-0010", AmountFen: 1, ResultCode: "MAYBE"}},
		{"query_state", PayRequest{OutTradeNo: "order-0010", AmountFen: 1, QueryState: "PAID"}},
		{"duplicates", PayRequest{OutTradeNo: "order-0010", AmountFen: 1, Duplicates: 1000}},
		{"version", PayRequest{OutTradeNo: "order-0010", AmountFen: 1, Version: "v4"}},
		{"unknown field", map[string]any{"out_trade_no": "order-0010", "amount_fen": 1, "amount": 1}},
		{"amount as string", map[string]any{"out_trade_no": "order-0010", "amount_fen": "1"}},
	}
	for _, tt := range tests {
		status, out := postJSON(t, base+"/sim/pay", tt.body)
		var e struct{ Error string }
		if status != http.StatusBadRequest || json.Unmarshal(out, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %s", tt.name, status, out)
		}
	}
	if status, _ := postJSON(t, base+"/sim/trades/order-none/notify", nil); status != http.StatusNotFound {
		t.Errorf("renotify unknown: %d", status)
	}
	resp, err := http.Get(base + "/sim/trades/order-none")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown: %d", resp.StatusCode)
	}
	resp, err = http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %d", resp.StatusCode)
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"WECHATPAY_APPID": testAppID, "WECHATPAY_MCHID": testMchID, "WECHATPAY_API_KEY": testKey}
	c, err := LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != DefaultAddr || c.NotifyURL != DefaultNotifyURL || c.TimeScale != 1 || c.QueryDelay != 0 {
		t.Errorf("defaults %v", c)
	}
	for _, s := range []string{c.String(), c.LogValue().String()} {
		if strings.Contains(s, testKey) {
			t.Errorf("config text shows the key: %s", s)
		}
	}
	env["SIM_TIME_SCALE"], env["SIM_QUERY_DELAY"] = "0.001", "250ms"
	if c, err = LoadConfig(func(k string) string { return env[k] }); err != nil || c.TimeScale != 0.001 || c.QueryDelay != 250*time.Millisecond {
		t.Errorf("LoadConfig = %v, %v", c, err)
	}
	for k, v := range map[string]string{"SIM_TIME_SCALE": "-1", "SIM_QUERY_DELAY": "soon", "WECHATPAY_API_KEY": "", "SIM_NOTIFY_URL": "ftp://x"} {
		bad := map[string]string{}
		for kk, vv := range env {
			bad[kk] = vv
		}
		bad[k] = v
		if _, err := LoadConfig(func(k string) string { return bad[k] }); err == nil {
			t.Errorf("%s=%q accepted", k, v)
		} else if strings.Contains(err.Error(), testKey) {
			t.Errorf("error shows the key: %v", err)
		}
	}
}

func TestQueryDelay(t *testing.T) {
	s, err := New(Config{AppID: testAppID, MchID: testMchID, APIKey: testKey, NotifyURL: "http://127.0.0.1:1/notify", QueryDelay: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(s.Close)
	t.Cleanup(srv.Close)
	start := time.Now()
	_, err = client(srv.URL, "").QueryOrder(context.Background(), "order-0011")
	if !errors.Is(err, wechatpay.ErrOrderNotExist) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("answered after %v, want >= 100ms", d)
	}
}
