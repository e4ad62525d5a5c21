package e2e

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/payment"
)

// chromium runs Debian's headless Chromium (no browser download) with the
// flags this closed network needs, and returns what it printed.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("Debian's chromium is needed for the browser test (make test installs it: apt-get install chromium)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--window-size=1400,800", "--virtual-time-budget=15000"}
	out, err := exec.CommandContext(ctx, bin, append(base, args...)...).Output()
	if err != nil {
		t.Fatalf("chromium %v: %v", args, err)
	}
	return string(out)
}

func uiListURL(query string) string {
	return st.TemporalUIURL + "/namespaces/default/workflows?query=" + url.QueryEscape(query)
}

// An operator finds a payment in the Temporal UI by OutTradeNo, with its
// PaymentStatus; the same search for another status finds nothing.
func TestTemporalUIFindsPaymentByOutTradeNo(t *testing.T) {
	d := st.v3
	no := uniqueNo("UI")
	d.createPrepaid(t, map[string]any{"out_trade_no": no, "amount_fen": 1234, "description": "UI demo", "trade_type": "NATIVE"})
	paid := d.simPay(t, map[string]any{"out_trade_no": no})
	assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)

	found := `OutTradeNo="` + no + `" AND PaymentStatus="PAID"`
	eventually(t, 60*time.Second, "the UI to list the payment", func() bool {
		return strings.Contains(chromium(t, "--dump-dom", uiListURL(found)), "payment/"+no)
	})
	if dom := chromium(t, "--dump-dom", uiListURL(`OutTradeNo="`+no+`" AND PaymentStatus="REVIEW"`)); strings.Contains(dom, "payment/"+no) {
		t.Fatal("the UI lists the paid order under PaymentStatus=REVIEW")
	}

	dir := os.Getenv("SCREENSHOT_DIR") // make screenshot: docs/img, embedded by the README
	if dir == "" {
		dir = t.TempDir()
	}
	shot, err := filepath.Abs(filepath.Join(dir, "temporal-ui-payment.png"))
	if err != nil {
		t.Fatal(err)
	}
	chromium(t, "--screenshot="+shot, uiListURL(found))
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
		t.Fatalf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
