package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

func TestV3NotifyPaidOnce(t *testing.T) {
	d := st.v3
	no := uniqueNo("V3PAID")
	d.createOrder(t, no, 2345)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 2345, "duplicates": 4, "concurrent": true})
	tr := d.waitDelivered(t, no, 5)
	o := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, o, paid.TransactionID)
	if !strings.Contains(paidLogs(o)[0].Remarks, "notification v3") {
		t.Fatalf("PAID remarks %q do not say v3", paidLogs(o)[0].Remarks)
	}
	for _, del := range tr.Deliveries {
		if a := del.Attempts[len(del.Attempts)-1]; a.HTTPStatus != http.StatusNoContent {
			t.Fatalf("v3 acknowledgement = %d, want 204", a.HTTPStatus)
		}
	}
	if q := d.getSimTrade(t, no).Queries; q < 1 {
		t.Fatal("the workflow never asked WeChat's v3 order query")
	}
}

func TestV3NotifyWithV2Query(t *testing.T) {
	d := st.v2 // WECHATPAY_API_VERSION=v2: our own calls use API v2
	no := uniqueNo("V3V2Q")
	d.createOrder(t, no, 999)
	paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 999, "version": "v3"})
	o := d.waitStatus(t, no, payment.StatusPaid)
	assertPaidOnce(t, o, paid.TransactionID)
	if q := d.getSimTrade(t, no).Queries; q < 1 {
		t.Fatalf("queries = %d", q)
	}
}

// The v3 deployment trusts the primary public key, a second public key
// and a platform certificate: a merchant in the middle of a rotation.
func TestV3RotationBothKeysAccepted(t *testing.T) {
	d := st.v3
	for _, key := range []string{st.keys.PublicKeyID, st.keys.SecondPublicKeyID, st.keys.PlatformCertSerial} {
		no := uniqueNo("ROTATE")
		d.createOrder(t, no, 321)
		paid := d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 321, "platform_key": key})
		assertPaidOnce(t, d.waitStatus(t, no, payment.StatusPaid), paid.TransactionID)
	}
}

// The v2 deployment trusts only the primary public key.
func TestV3UnconfiguredKeyRejected(t *testing.T) {
	d := st.v2
	no := uniqueNo("BADKEY")
	d.createOrder(t, no, 321)
	d.simPay(t, map[string]any{"out_trade_no": no, "amount_fen": 321, "version": "v3", "platform_key": st.keys.SecondPublicKeyID})
	eventually(t, 30*time.Second, "the notification to be refused twice", func() bool {
		tr := d.getSimTrade(t, no)
		return len(tr.Deliveries) == 1 && len(tr.Deliveries[0].Attempts) >= 2
	})
	for _, a := range d.getSimTrade(t, no).Deliveries[0].Attempts {
		if a.Accepted || a.HTTPStatus != http.StatusUnauthorized {
			t.Fatalf("attempt = %+v, want refused with 401", a)
		}
	}
	o := d.getOrder(t, no)
	if o.Status != payment.StatusPending || len(o.Logs) != 1 {
		t.Fatalf("order changed: %+v", o)
	}
	if n := notificationsReceived(t, no); n != 0 {
		t.Fatalf("the workflow received %d notifications", n)
	}
}

func TestV3RejectsStaleForeignAndMalformed(t *testing.T) {
	d := st.v3
	no := uniqueNo("V3BAD")
	d.createOrder(t, no, 500)
	now := time.Now()
	cases := []struct {
		name   string
		at     time.Time
		mchid  string
		body   string
		status int
	}{
		{"stale timestamp", now.Add(-10 * time.Minute), mchID, "", http.StatusUnauthorized},
		{"future timestamp", now.Add(10 * time.Minute), mchID, "", http.StatusUnauthorized},
		{"foreign merchant", now, "1900000999", "", http.StatusForbidden},
		{"malformed envelope", now, mchID, `{"id":`, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := d.postV3(t, c.at, no, c.mchid, c.body)
			if status != c.status || !strings.Contains(body, `"code":"FAIL"`) {
				t.Fatalf("answer = %d %s, want %d with code FAIL", status, body, c.status)
			}
		})
	}
	// A correct one, signed now, is accepted: the cases above failed for
	// their one defect.
	if status, body := d.postV3(t, now, no, mchID, ""); status != http.StatusNoContent {
		t.Fatalf("valid notification = %d %s", status, body)
	}
}

// postV3 sends a v3 notification for order no, signed by the primary
// WeChat Pay key at time at; body replaces the envelope when non-empty.
func (d *deployment) postV3(t *testing.T, at time.Time, no, mchid, body string) (int, string) {
	t.Helper()
	plain, _ := json.Marshal(map[string]any{
		"appid": appID, "mchid": mchid, "out_trade_no": no, "transaction_id": "4200000000" + strconv.FormatInt(at.UnixNano(), 10)[:18],
		"trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
		"success_time": at.Format(time.RFC3339), "payer": map[string]string{"openid": "oTest"},
		"amount": map[string]any{"total": 500, "payer_total": 500, "currency": "CNY", "payer_currency": "CNY"},
	})
	if body == "" {
		ct, err := apiv3.EncryptResource(st.apiV3Key, "0123456789ab", "transaction", plain)
		if err != nil {
			t.Fatal(err)
		}
		env, _ := json.Marshal(map[string]any{
			"id": fmt.Sprintf("EV-%d", at.UnixNano()), "create_time": at.Format(time.RFC3339), "resource_type": "encrypt-resource",
			"event_type": "TRANSACTION.SUCCESS", "summary": "支付成功",
			"resource": map[string]string{"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
				"ciphertext": ct, "associated_data": "transaction", "nonce": "0123456789ab"},
		})
		body = string(env)
	}
	priv, err := utils.LoadPrivateKeyWithPath(filepath.Join(st.keys.Dir, "platform", st.keys.PublicKeyID+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(at.Unix(), 10), "n"+strconv.FormatInt(at.UnixNano(), 36)
	sig, err := apiv3.SignMessage(priv, apiv3.NotifyMessage(ts, nonce, []byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, d.apiURL+"/wechatpay/v3/notify", bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Wechatpay-Serial", st.keys.PublicKeyID)
	req.Header.Set("Wechatpay-Signature", sig)
	req.Header.Set("Wechatpay-Timestamp", ts)
	req.Header.Set("Wechatpay-Nonce", nonce)
	req.Header.Set("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
