package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/workflows"
)

// send is one request exactly as given: no token unless auth says so.
func send(t *testing.T, method, url, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// The order API through the real bin/api with API_TOKENS: 401 without
// the token (or with a wrong one, another scheme, or the token in the
// query string), and nothing created; 201 with it.
func TestOrderAPINeedsBearerToken(t *testing.T) {
	for _, d := range []*deployment{st.v2, st.v3} {
		t.Run(d.name, func(t *testing.T) {
			no := uniqueNo("AUTH")
			body := `{"out_trade_no":"` + no + `","amount_fen":100,"description":"e2e auth"}`
			for _, tt := range []struct{ name, query, auth string }{
				{"no token", "", ""},
				{"wrong token", "", "Bearer " + newToken()},
				{"Basic", "", "Basic " + d.token},
				{"lowercase scheme", "", "bearer " + d.token},
				{"token in the query string", "?access_token=" + d.token, ""},
			} {
				code, hdr, got := send(t, http.MethodPost, d.apiURL+"/orders"+tt.query, tt.auth, body)
				var e map[string]string
				if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != "Bearer" ||
					json.Unmarshal([]byte(got), &e) != nil || e["error"] == "" {
					t.Fatalf("%s: %d %v %s, want 401 with WWW-Authenticate: Bearer and {\"error\":…}", tt.name, code, hdr, got)
				}
				if strings.Contains(got, d.token) {
					t.Fatalf("%s: the answer shows the token", tt.name)
				}
			}
			for _, path := range []string{"/orders/" + no, "/orders/" + no + "/close", "/orders/" + no + "/sync"} {
				method := http.MethodPost
				if path == "/orders/"+no {
					method = http.MethodGet
				}
				if code, _, _ := send(t, method, d.apiURL+path, "", ""); code != http.StatusUnauthorized {
					t.Fatalf("%s %s without a token: %d", method, path, code)
				}
			}
			// Nothing was created, nor any workflow started.
			if code, _, got := send(t, http.MethodGet, d.apiURL+"/orders/"+no, "Bearer "+d.token, ""); code != http.StatusNotFound {
				t.Fatalf("after the denied requests GET /orders/%s = %d %s, want 404", no, code, got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := st.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), ""); err == nil {
				t.Fatal("a denied POST /orders started a workflow")
			}

			code, _, got := send(t, http.MethodPost, d.apiURL+"/orders", "Bearer "+d.token, body)
			if code != http.StatusCreated || !strings.Contains(got, `"status":"PENDING"`) {
				t.Fatalf("POST /orders with the token: %d %s", code, got)
			}
			if o := d.getOrder(t, no); o.AmountFen != 100 || o.Status != payment.StatusPending {
				t.Fatalf("order = %+v", o)
			}
		})
	}
}

// WeChat sends no token: a v2 and a v3 notification are acknowledged by
// the real bin/api with API_TOKENS set and the orders become PAID; the
// probes and metrics answer without a token too.
func TestNotificationsNeedNoToken(t *testing.T) {
	for _, c := range []struct {
		d       *deployment
		version string
		ack     int
	}{{st.v2, "v2", http.StatusOK}, {st.v3, "v3", http.StatusNoContent}} {
		t.Run(c.version, func(t *testing.T) {
			d := c.d
			for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
				if code, _, _ := send(t, http.MethodGet, d.apiURL+path, "", ""); code != http.StatusOK {
					t.Fatalf("GET %s without a token = %d", path, code)
				}
			}
			no := uniqueNo("NOTOK" + c.version)
			d.createOrder(t, no, 777)
			paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 777, "version": c.version})
			tr := d.waitDelivered(t, no, 1)
			for _, del := range tr.Deliveries {
				if a := del.Attempts[len(del.Attempts)-1]; a.HTTPStatus != c.ack {
					t.Fatalf("%s notification answered %d, want %d", c.version, a.HTTPStatus, c.ack)
				}
			}
			o := d.waitStatus(t, no, payment.StatusPaid)
			assertPaidOnce(t, o, paid.TransactionID)
			if !strings.Contains(paidLogs(o)[0].Remarks, "notification "+c.version) {
				t.Fatalf("PAID remarks %q: not paid by the %s notification", paidLogs(o)[0].Remarks, c.version)
			}
		})
	}
}

// Without API_TOKENS, bin/api refuses to start on any address but
// loopback, before it connects to anything (PostgreSQL and Temporal are
// unreachable here, and it still exits at once), saying what to set.
func TestAPIRefusesNonLoopbackWithoutTokens(t *testing.T) {
	_, port, _ := strings.Cut(freeAddr(t), ":")
	for _, addr := range []string{"0.0.0.0:" + port, ":" + port, "[::]:" + port} {
		for _, tokens := range []string{"", " , "} {
			t.Run(addr+"/"+tokens, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, filepath.Join(st.BinDir, "api"))
				cmd.Env = []string{
					"API_ADDR=" + addr, "API_TOKENS=" + tokens,
					"DATABASE_URL=postgres://postgres@127.0.0.1:1/payments?sslmode=disable", "TEMPORAL_ADDRESS=127.0.0.1:1",
					"WECHATPAY_APPID=" + appID, "WECHATPAY_MCHID=" + mchID, "WECHATPAY_API_KEY=" + apiKey,
					"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
				}
				start := time.Now()
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if ctx.Err() != nil || !errors.As(err, &exit) || exit.ExitCode() == 0 {
					t.Fatalf("bin/api on %s without tokens: err %v after %s, want a non-zero exit at once\n%s", addr, err, time.Since(start), out)
				}
				for _, want := range []string{"API_TOKENS", "loopback", addr} {
					if !strings.Contains(string(out), want) {
						t.Errorf("message %q does not say %q", out, want)
					}
				}
				if strings.Contains(string(out), "waiting for") {
					t.Errorf("it tried to connect before refusing:\n%s", out)
				}
			})
		}
	}
}

// On loopback without API_TOKENS (make run's old default, a developer's
// machine) bin/api starts, and its order API needs no token.
func TestAPIOnLoopbackWithoutTokens(t *testing.T) {
	api := st.v2.NewAPI("loopback-api", freeAddr(t), "API_TOKENS=")
	if err := api.Start(); err != nil {
		t.Fatal(err)
	}
	defer api.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := api.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	addr := api.Addr
	no := uniqueNo("LOOP")
	code, _, got := send(t, http.MethodPost, "http://"+addr+"/orders", "", `{"out_trade_no":"`+no+`","amount_fen":5,"description":"loopback"}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /orders on loopback without tokens: %d %s", code, got)
	}
}

// No api log line holds a token, though the tests above sent right and
// wrong ones; the denials are logged.
func TestTokensNeverLogged(t *testing.T) {
	for _, d := range []*deployment{st.v2, st.v3} {
		// Denials to log: a wrong token, the right one in the query string,
		// and a request that carries the right one.
		send(t, http.MethodGet, d.apiURL+"/orders/NOSUCHORDER1", "Bearer "+st.v2.token+"x", "")
		send(t, http.MethodGet, d.apiURL+"/orders/NOSUCHORDER1?access_token="+d.token, "", "")
		if code, _, _ := send(t, http.MethodGet, d.apiURL+"/orders/NOSUCHORDER1", "Bearer "+d.token, ""); code != http.StatusNotFound {
			t.Fatalf("GET with the token = %d", code)
		}
		b, err := os.ReadFile(d.api.LogFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{st.v2.token, st.v3.token} {
			if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(tok[:16])) {
				t.Fatalf("%s shows a bearer token", d.api.LogFile)
			}
		}
		if !bytes.Contains(b, []byte("request denied")) {
			t.Fatalf("%s does not record the denied requests", d.api.LogFile)
		}
	}
}
