package apiv2

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/wechatpay"
)

const v2TestBill = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类," +
	"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n" +
	"总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n" +
	"`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\r\n"

// fakeDownloadBill plays /pay/downloadbill: it checks the signed request
// and answers by bill_date, as WeChat does: the gzip file, or unsigned XML.
func fakeDownloadBill(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req, err := DecodeXML(body)
		if err != nil || r.URL.Path != "/pay/downloadbill" {
			t.Errorf("request %s: %v", r.URL.Path, err)
		}
		if err := Verify(req, docKey); err != nil {
			t.Errorf("request signature: %v", err)
		}
		if req["appid"] != testAppID || req["mch_id"] != testMchID || req["bill_type"] != "ALL" || req["tar_type"] != "GZIP" || req["nonce_str"] == "" {
			t.Errorf("request %v", req)
		}
		fail := func(msg string) {
			_, _ = w.Write(EncodeXML(map[string]string{"return_code": "FAIL", "return_msg": msg}))
		}
		switch req["bill_date"] {
		case "20261125":
			zw := gzip.NewWriter(w)
			zw.Name = testMchID + "All2026-11-25.csv"
			_, _ = io.WriteString(zw, v2TestBill)
			_ = zw.Close()
		case "20261124":
			fail("No Bill Exist")
		case "20261123":
			fail("Bill Creating")
		case "20261122":
			fail("system error")
		case "20261121":
			fail("签名错误")
		case "20261120":
			w.WriteHeader(http.StatusBadGateway)
		case "20261119":
			fmt.Fprint(w, "<html>gateway</html>")
		case "20261118":
			fail("CompressGZip Error")
		case "20261117":
			_, _ = w.Write(EncodeXML(map[string]string{"return_code": "SUCCESS", "return_msg": "OK"}))
		default:
			fail("invalid bill_date")
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestDownloadBill(t *testing.T) {
	srv := fakeDownloadBill(t)
	for _, signType := range []string{SignTypeMD5, SignTypeHMACSHA256} {
		c := &Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(docKey), SignType: signType, HTTP: srv.Client()}
		link, err := c.LocateBill(t.Context(), "2026-11-25")
		if err != nil || link != (wechatpay.BillLink{Date: "2026-11-25"}) {
			t.Fatalf("link %+v, %v", link, err)
		}
		body, err := c.OpenBill(t.Context(), link)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(body)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(zr)
		body.Close()
		if string(got) != v2TestBill {
			t.Fatalf("bill %q", got)
		}
	}
}

func TestDownloadBillFailures(t *testing.T) {
	srv := fakeDownloadBill(t)
	c := &Client{BaseURL: srv.URL, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(docKey), HTTP: srv.Client()}
	for _, tc := range []struct {
		date      string
		is        error
		retryable bool
	}{
		{"2026-11-24", wechatpay.ErrNoBill, false},
		{"2026-11-23", wechatpay.ErrBillNotReady, false},
		{"2026-11-22", nil, true},
		{"2026-11-21", nil, true}, // a configuration fault: retried, never a verdict
		{"2026-11-20", nil, true},
		{"2026-11-19", wechatpay.ErrBadAnswer, true},
		{"2026-11-18", nil, true},
		{"2026-11-17", wechatpay.ErrBadAnswer, true},
		{"2026-02-30", wechatpay.ErrMalformed, false},
	} {
		_, err := c.OpenBill(t.Context(), wechatpay.BillLink{Date: tc.date})
		if err == nil {
			t.Errorf("%s: no error", tc.date)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v, want %v", tc.date, err, tc.is)
		}
		if tc.is == nil && (errors.Is(err, wechatpay.ErrNoBill) || errors.Is(err, wechatpay.ErrBillNotReady)) {
			t.Errorf("%s: %v", tc.date, err)
		}
		if tc.is != wechatpay.ErrNoBill && tc.is != wechatpay.ErrBillNotReady && wechatpay.Retryable(err) != tc.retryable {
			t.Errorf("%s: Retryable(%v) = %v", tc.date, err, !tc.retryable)
		}
		if strings.Contains(err.Error(), docKey) {
			t.Errorf("%s: the error shows the key", tc.date)
		}
	}
	var ae *wechatpay.APIError
	_, err := c.OpenBill(t.Context(), wechatpay.BillLink{Date: "2026-11-21"})
	if !errors.As(err, &ae) || ae.Code != wechatpay.CodeSignError {
		t.Errorf("sign error: %v", err)
	}
}
