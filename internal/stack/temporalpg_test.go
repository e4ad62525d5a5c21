package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/payflow/payflow/internal/invariant"
	"github.com/payflow/payflow/payment"
)

// On Temporal server v1.29.1 with PostgreSQL (when `make temporal-pg` has
// built it), a deployment pays an order once, and pays another after
// temporal-server was killed and restarted with its state. Skipped without
// the binaries and with -short.
func TestTemporalPostgresStack(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	mod, err := moduleDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := FindTemporalPGBins(filepath.Join(mod, "bin")).Missing(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{
		Temporal:    TemporalOptions{Server: TemporalPostgres},
		Deployments: []DeploymentOptions{{Name: "pg", APIVersion: "v2"}},
		Logf:        t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	defer func() {
		if t.Failed() {
			s.DumpLogs(os.Stderr, 8000)
		}
	}()
	d := s.Deployment("pg")
	if s.Temporal.Name != "temporal-server" || s.TemporalPG == nil || d.TaskQueue != "payments-pg" {
		t.Fatalf("stack = %+v", s)
	}

	pay := func(no string) {
		t.Helper()
		call(t, d, http.MethodPost, d.APIURLs[0]+"/orders", map[string]any{"out_trade_no": no, "amount_fen": 101, "description": "stack"}, http.StatusCreated, nil)
		var tr struct {
			TransactionID string `json:"transaction_id"`
		}
		call(t, d, http.MethodPost, d.SimURL+"/sim/pay", map[string]any{"out_trade_no": no, "amount_fen": 101}, http.StatusOK, &tr)
		deadline := time.Now().Add(90 * time.Second)
		for {
			var o payment.Order
			call(t, d, http.MethodGet, d.APIURLs[0]+"/orders/"+no, nil, http.StatusOK, &o)
			err := invariant.PaidOnce(o, tr.TransactionID)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("order %s: %v", no, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	pay(fmt.Sprintf("STACKPG1%d", time.Now().UnixNano()%1e9))
	if err := s.Temporal.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := s.Temporal.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	pay(fmt.Sprintf("STACKPG2%d", time.Now().UnixNano()%1e9))
}

// call sends a JSON request with the deployment's token and decodes a
// JSON answer into out.
func call(t *testing.T, d *Deployment, method, url string, in any, want int, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	req.Header.Set("Content-Type", "application/json")
	d.Authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatal(err)
		}
	}
}
