package apiv2

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/wechatpay"

	"github.com/payflow/payflow/payment"
)

func TestV2Notification(t *testing.T) {
	vec := loadV2NotifyVector(t)
	good := maps.Clone(vec.Params)
	good["sign"] = vec.SignMD5
	if err := Verify(good, vec.APIKey); err != nil {
		t.Fatal(err)
	}

	n, err := PaymentNotification(good)
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Notification{
		ID:            n.ID,
		Source:        payment.SourceV2,
		OutTradeNo:    "1409811653",
		TransactionID: "1004400740201409030005092168",
		AppID:         "wx2421b1c4370ec43b",
		MchID:         "10000100",
		AmountFen:     1,
		Currency:      "CNY",
		ResultCode:    "SUCCESS",
		PaidAt:        time.Date(2014, 9, 3, 5, 15, 40, 0, time.UTC),
	}
	if !n.PaidAt.Equal(want.PaidAt) {
		t.Errorf("PaidAt = %v, want %v", n.PaidAt, want.PaidAt)
	}
	n.PaidAt = want.PaidAt
	if n != want {
		t.Errorf("got  %+v\nwant %+v", n, want)
	}
	if !strings.HasPrefix(n.ID, "v2:") || len(n.ID) != 3+64 {
		t.Errorf("ID = %q, want v2: and 64 hex chars", n.ID)
	}
	if strings.Contains(n.ID, vec.APIKey) {
		t.Error("ID contains the key")
	}
	if !n.Succeeded() {
		t.Error("Succeeded() = false")
	}

	// The ID identifies the content: the same notification has the same ID
	// whatever its sign, another one has another.
	resigned := maps.Clone(good)
	resigned["sign"] = strings.ToLower(vec.SignMD5)
	if n2, _ := PaymentNotification(resigned); n2.ID != n.ID {
		t.Error("ID depends on the sign")
	}
	other := maps.Clone(good)
	other["nonce_str"] = "another"
	if n3, _ := PaymentNotification(other); n3.ID == n.ID {
		t.Error("different notifications share an ID")
	}
}

func TestV2NotificationVariants(t *testing.T) {
	vec := loadV2NotifyVector(t)
	with := func(kv ...string) map[string]string {
		p := maps.Clone(vec.Params)
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "<delete>" {
				delete(p, kv[i])
			} else {
				p[kv[i]] = kv[i+1]
			}
		}
		return p
	}
	tests := []struct {
		name    string
		params  map[string]string
		check   func(payment.Notification) bool
		wantErr bool
	}{
		{"failed payment", with("result_code", "FAIL", "err_code", "PAYERROR", "err_code_des", "支付失败", "transaction_id", "<delete>", "time_end", "<delete>"),
			func(n payment.Notification) bool {
				return n.ResultCode == "FAIL" && n.ErrCode == "PAYERROR" && n.ErrCodeDes == "支付失败" && !n.Succeeded() && n.PaidAt.IsZero()
			}, false},
		{"failed payment without total_fee", with("result_code", "FAIL", "total_fee", "<delete>", "transaction_id", "<delete>"),
			func(n payment.Notification) bool { return n.AmountFen == 0 }, false},
		{"fee_type absent is CNY", with("fee_type", "<delete>"), func(n payment.Notification) bool { return n.Currency == "CNY" }, false},
		{"large amount", with("total_fee", "123456789"), func(n payment.Notification) bool { return n.AmountFen == 123456789 }, false},
		{"return_code FAIL", with("return_code", "FAIL"), nil, true},
		{"total_fee decimal", with("total_fee", "1.00"), nil, true},
		{"total_fee negative", with("total_fee", "-1"), nil, true},
		{"total_fee plus sign", with("total_fee", "+1"), nil, true},
		{"total_fee zero", with("total_fee", "0"), nil, true},
		{"total_fee text", with("total_fee", "abc"), nil, true},
		{"total_fee overflow", with("total_fee", "99999999999999999999"), nil, true},
		{"total_fee missing", with("total_fee", "<delete>"), nil, true},
		{"total_fee bad on FAIL", with("result_code", "FAIL", "total_fee", "1.00"), nil, true},
		{"out_trade_no missing", with("out_trade_no", "<delete>"), nil, true},
		{"out_trade_no invalid", with("out_trade_no", "abc/../x"), nil, true},
		{"appid missing", with("appid", ""), nil, true},
		{"mch_id missing", with("mch_id", "<delete>"), nil, true},
		{"result_code missing", with("result_code", "<delete>"), nil, true},
		{"result_code unknown", with("result_code", "MAYBE"), nil, true},
		{"transaction_id missing", with("transaction_id", "<delete>"), nil, true},
		{"time_end malformed", with("time_end", "2014-09-03 13:15:40"), nil, true},
		{"time_end impossible", with("time_end", "20141303131540"), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := PaymentNotification(tt.params)
			if tt.wantErr {
				if !errors.Is(err, wechatpay.ErrMalformed) {
					t.Fatalf("err = %v, want wechatpay.ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(n) {
				t.Errorf("unexpected notification %+v", n)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	vec := loadV2NotifyVector(f)
	p := maps.Clone(vec.Params)
	p["sign"] = vec.SignMD5
	f.Add(EncodeXML(p))
	p["sign_type"] = SignTypeHMACSHA256
	f.Add(EncodeXML(p))
	p["sign_type"] = "SHA1"
	f.Add(EncodeXML(p))
	f.Add([]byte(`<xml><sign>x</sign></xml>`))
	delete(p, "sign_type")
	p["sign"] = vec.SignHMAC
	f.Add(EncodeXML(p))
	f.Fuzz(func(t *testing.T, body []byte) {
		params, err := DecodeXML(body)
		if err != nil {
			return
		}
		if err := Verify(params, vec.APIKey); err == nil {
			// Whatever passes must carry exactly the signature we compute
			// with the algorithm sign_type names, or else its length.
			alg := params["sign_type"]
			if alg == "" && len(params["sign"]) == 64 {
				alg = SignTypeHMACSHA256
			}
			want, err := Sign(params, vec.APIKey, alg)
			if err != nil || want != strings.ToUpper(params["sign"]) {
				t.Fatalf("Verify accepted sign %q, Sign gives %q, %v", params["sign"], want, err)
			}
		}
		_, _ = PaymentNotification(params)
	})
}
