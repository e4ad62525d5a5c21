package sim

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/bill"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// The day the tests' trades were paid (Beijing).
var billTestDay = time.Date(2026, 11, 25, 0, 0, 0, 0, beijing)

// newBillSim is a sandbox with v3 keys, two trades paid on billTestDay (one
// prepaid NATIVE with a description that needs cleaning) and its server.
func newBillSim(t *testing.T) (string, merchant, *Server) {
	t.Helper()
	kf := testKeys(t)
	s, err := New(Config{AppID: testAppID, MchID: testMchID, KeysDir: kf.Dir, NotifyURL: "http://127.0.0.1:1/notify", TimeScale: 0.0001}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(s.Close)
	t.Cleanup(srv.Close)
	if _, err := s.trades.prepay(prepayOrder{Version: "v3", TradeType: "NATIVE", OutTradeNo: "BILL00001", Description: "咖啡, 大杯\n`x",
		NotifyURL: "https://merchant.example/notify", AmountFen: 1234}, billTestDay.Add(9*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		no  string
		fen int64
		at  time.Duration
	}{{"BILL00001", 1234, 9*time.Hour + 30*time.Minute + 12*time.Second}, {"BILL00002", 1, 18*time.Hour + 45*time.Minute + 59*time.Second}} {
		if _, err := s.trades.pay(PayRequest{OutTradeNo: p.no, AmountFen: p.fen, ResultCode: "SUCCESS"}, billTestDay.Add(p.at)); err != nil {
			t.Fatal(err)
		}
	}
	// A trade of the day before and an unpaid one are not in the bill.
	if _, err := s.trades.pay(PayRequest{OutTradeNo: "BILL00003", AmountFen: 5, ResultCode: "SUCCESS"}, billTestDay.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	s.trades.mu.Lock()
	s.trades.create("BILL00004", 7, billTestDay.Add(time.Hour))
	s.trades.mu.Unlock()
	return srv.URL, newMerchant(t), s
}

func setSwitches(t *testing.T, base, date string, sw BillSwitches) BillView {
	t.Helper()
	status, body := postJSON(t, base+"/sim/bills/"+date, sw)
	if status != http.StatusOK {
		t.Fatalf("switches: %d %s", status, body)
	}
	var v BillView
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// download GETs a download_url signed by the merchant, as WeChat wants it.
func (m merchant) download(t *testing.T, link string) *http.Response {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "NONCE"+randomAlnum(27)
	sig, err := apiv3.SignMessage(m.key, apiv3.RequestMessage(http.MethodGet, u.RequestURI(), ts, nonce, nil))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, link, nil)
	req.Header.Set("Authorization", `WECHATPAY2-SHA256-RSA2048 mchid="`+testMchID+`",nonce_str="`+nonce+`",timestamp="`+ts+
		`",serial_no="`+m.kf.MchCertSerial+`",signature="`+sig+`"`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func gunzip(t *testing.T, r io.Reader) string {
	t.Helper()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The bill checked against WeChat's published format, text for text: the
// header of the format page, back-ticked fields, yuan with two decimals,
// the fee with five, refund rows with the order's ids, the summary.
func TestV3TradeBillAsWeChatServesIt(t *testing.T) {
	base, m, s := newBillSim(t)
	setSwitches(t, base, "2026-11-25", BillSwitches{Refunds: []BillRefund{{OutTradeNo: "BILL00001", OutRefundNo: "RF-1", AmountFen: 234}}})
	status, body := m.call(t, base, http.MethodGet, "/v3/bill/tradebill?bill_date=2026-11-25&bill_type=ALL&tar_type=GZIP", nil)
	if status != http.StatusOK {
		t.Fatalf("tradebill: %d %s", status, body)
	}
	var tb struct {
		HashType    string `json:"hash_type"`
		HashValue   string `json:"hash_value"`
		DownloadURL string `json:"download_url"`
	}
	if err := json.Unmarshal(body, &tb); err != nil || tb.HashType != "SHA1" || !strings.HasPrefix(tb.DownloadURL, base+"/v3/billdownload/file?token=") ||
		!strings.HasSuffix(tb.DownloadURL, "&tartype=gzip") {
		t.Fatalf("tradebill answer %s", body)
	}
	resp := m.download(t, tb.DownloadURL)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Wechatpay-Signature") != "" || resp.Header.Get("Wechatpay-Serial") != "" ||
		resp.Header.Get("Content-Type") != "application/x-gzip" {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	got := gunzip(t, resp.Body)
	v1, _ := s.trades.view("BILL00001")
	v2, _ := s.trades.view("BILL00002")
	const header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额," +
		"代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
	want := "\uFEFF" + header + "\r\n" +
		"`2026-11-25 09:30:12,`wx2421b1c4370ec43b,`10000100,`0,`,`" + v1.TransactionID + ",`BILL00001,`" + v1.OpenID +
		",`NATIVE,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`咖啡, 大杯 'x,`,`0.07000,`0.60%,`12.34,`0.00,`\r\n" +
		"`2026-11-25 18:45:59,`wx2421b1c4370ec43b,`10000100,`0,`,`" + v2.TransactionID + ",`BILL00002,`" + v2.OpenID +
		",`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.01,`0.00,`0,`0,`0.00,`0.00,`,`,`,`,`0.00000,`0.60%,`0.01,`0.00,`\r\n" +
		"`2026-11-25 20:00:00,`wx2421b1c4370ec43b,`10000100,`0,`,`" + v1.TransactionID + ",`BILL00001,`oSandboxRefund00000000000000" +
		",`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300020261125" + "00000000000001,`RF-1,`2.34,`0.00,`ORIGINAL,`SUCCESS,`sandbox,`,`-0.01000,`0.60%,`0.00,`2.34,`\r\n" +
		"总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n" +
		"`3,`12.35,`2.34,`0.00,`0.06000,`12.35,`2.34\r\n"
	if got != want {
		t.Fatalf("bill\n%q\nwant\n%q", got, want)
	}
	sum := sha1.Sum([]byte(got))
	if tb.HashValue != hex.EncodeToString(sum[:]) {
		t.Fatalf("hash_value %s is not the SHA-1 of the uncompressed file", tb.HashValue)
	}
	// The link is short-lived, and only for the merchant.
	s.bills.mu.Lock()
	for _, f := range s.bills.links {
		if time.Until(f.expires) > billLinkTTL || time.Until(f.expires) < billLinkTTL-time.Minute {
			t.Errorf("a link valid until %v", f.expires)
		}
		f.expires = time.Now().Add(-time.Second)
	}
	s.bills.mu.Unlock()
	if r := m.download(t, tb.DownloadURL); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired link: %d", r.StatusCode)
	}
	unsigned, err := http.Get(tb.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	unsigned.Body.Close()
	if unsigned.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned download: %d", unsigned.StatusCode)
	}
}

// The project's client and reader agree with the sandbox, switches and all.
func TestV3TradeBillSwitches(t *testing.T) {
	base, m, _ := newBillSim(t)
	c, err := apiv3.NewBillClient(context.Background(), apiv3.ClientConfig{BaseURL: base, MchID: testMchID, MchCertSerial: m.kf.MchCertSerial,
		MchPrivateKey: m.key, Keys: m.keys})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	read := func(date string) ([]bill.Row, error) {
		t.Helper()
		link, err := c.LocateBill(ctx, date)
		if err != nil {
			return nil, err
		}
		body, err := c.OpenBill(ctx, link)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		r, err := bill.NewGzipReader(body, bill.Options{MchID: testMchID, SHA1: link.HashValue})
		if err != nil {
			return nil, err
		}
		var rows []bill.Row
		for {
			row, err := r.Next()
			if err == io.EOF {
				return rows, nil
			}
			if err != nil {
				return rows, err
			}
			rows = append(rows, row)
		}
	}
	rows, err := read("2026-11-25")
	if err != nil || len(rows) != 2 || rows[0].OutTradeNo != "BILL00001" || rows[0].OrderFen != 1234 {
		t.Fatalf("rows %+v, %v", rows, err)
	}
	v := setSwitches(t, base, "2026-11-25", BillSwitches{
		Omit: []string{"BILL00002"}, Amounts: map[string]int64{"BILL00001": 1300},
		Extra: []BillTrade{{OutTradeNo: "STRANGER01", AmountFen: 500}}, Creating: 2, ExpireLinks: 1,
	})
	if v.Rows != 2 {
		t.Fatalf("view %+v", v)
	}
	for range 2 {
		if _, err := c.LocateBill(ctx, "2026-11-25"); !errors.Is(err, wechatpay.ErrBillNotReady) {
			t.Fatalf("creating: %v", err)
		}
	}
	if _, err := read("2026-11-25"); !errors.Is(err, wechatpay.ErrBillLinkExpired) {
		t.Fatalf("expired link: %v", err)
	}
	rows, err = read("2026-11-25")
	if err != nil || len(rows) != 2 || rows[0].OrderFen != 1300 || rows[1].OutTradeNo != "STRANGER01" || rows[1].OrderFen != 500 {
		t.Fatalf("switched rows %+v, %v", rows, err)
	}
	setSwitches(t, base, "2026-11-25", BillSwitches{WrongHash: true})
	if _, err := read("2026-11-25"); !errors.Is(err, bill.ErrHashMismatch) {
		t.Fatalf("wrong hash: %v", err)
	}
	// A day without trades has no bill, unless asked for an empty one.
	if _, err := c.LocateBill(ctx, "2026-11-20"); !errors.Is(err, wechatpay.ErrNoBill) {
		t.Fatalf("no trades: %v", err)
	}
	setSwitches(t, base, "2026-11-20", BillSwitches{Empty: true})
	if rows, err := read("2026-11-20"); err != nil || len(rows) != 0 {
		t.Fatalf("empty bill: %v %v", rows, err)
	}
	// Today has a bill too (the sandbox's books are never late); tomorrow not.
	if _, err := c.LocateBill(ctx, time.Now().In(beijing).AddDate(0, 0, 1).Format("2006-01-02")); err == nil || errors.Is(err, wechatpay.ErrNoBill) {
		t.Fatalf("tomorrow: %v", err)
	}
	for _, bad := range []string{`{"creating":-1}`, `{"synthetic_rows":-5}`, `{"amounts":{"X1":0}}`, `{"refunds":[{"out_trade_no":"BILL00001","out_refund_no":"R1","amount_fen":1,"status":"DONE"}]}`, `{"unknown":1}`} {
		resp, err := http.Post(base+"/sim/bills/2026-11-25", "application/json", strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, resp.StatusCode)
		}
	}
}

func TestV2DownloadBill(t *testing.T) {
	base, _, s := newBillSim(t)
	c := &apiv2.Client{BaseURL: base, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(s.cfg.APIKey), SignType: apiv2.SignTypeHMACSHA256}
	ctx := context.Background()
	body, err := c.OpenBill(ctx, wechatpay.BillLink{Date: "2026-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	text := gunzip(t, body)
	body.Close()
	if !strings.HasPrefix(text, "\uFEFF交易时间,公众账号ID,") || !strings.Contains(text, ",`BILL00002,`") ||
		!strings.HasSuffix(text, "`2,`12.35,`0.00,`0.00,`0.07000,`12.35,`0.00\r\n") {
		t.Fatalf("v2 bill %q", text)
	}
	if _, err := c.OpenBill(ctx, wechatpay.BillLink{Date: "2026-11-20"}); !errors.Is(err, wechatpay.ErrNoBill) {
		t.Fatalf("no trades: %v", err)
	}
	setSwitches(t, base, "2026-11-25", BillSwitches{Creating: 1})
	if _, err := c.OpenBill(ctx, wechatpay.BillLink{Date: "2026-11-25"}); !errors.Is(err, wechatpay.ErrBillNotReady) {
		t.Fatalf("creating: %v", err)
	}
	// A request with a bad signature is refused like any v2 call.
	bad := &apiv2.Client{BaseURL: base, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(strings.Repeat("0", 32))}
	if _, err := bad.OpenBill(ctx, wechatpay.BillLink{Date: "2026-11-25"}); err == nil || errors.Is(err, wechatpay.ErrNoBill) {
		t.Fatalf("bad signature: %v", err)
	}
}

// A synthetic bill is generated to disk and served from there; its rows
// are SyntheticTrade's, which a benchmark loads as its orders.
func TestSyntheticBill(t *testing.T) {
	base, m, _ := newBillSim(t)
	v := setSwitches(t, base, "2026-11-24", BillSwitches{SyntheticRows: 1000, SyntheticPrefix: "BENCH"})
	if v.Rows != 1000 {
		t.Fatalf("view %+v", v)
	}
	status, body := m.call(t, base, http.MethodGet, "/v3/bill/tradebill?bill_date=2026-11-24&bill_type=ALL&tar_type=GZIP", nil)
	var tb struct {
		HashValue   string `json:"hash_value"`
		DownloadURL string `json:"download_url"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &tb) != nil {
		t.Fatalf("%d %s", status, body)
	}
	raw, _ := io.ReadAll(m.download(t, tb.DownloadURL).Body)
	r, err := bill.NewGzipReader(bytes.NewReader(raw), bill.Options{MchID: testMchID, SHA1: tb.HashValue})
	if err != nil {
		t.Fatal(err)
	}
	day := billTestDay.AddDate(0, 0, -1)
	for i := 0; ; i++ {
		row, err := r.Next()
		if err == io.EOF {
			if i != 1000 {
				t.Fatalf("%d rows", i)
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		no, txn, fen, at := SyntheticTrade("BENCH", day, i, 1000)
		if row.OutTradeNo != no || row.TransactionID != txn || row.OrderFen != fen || !row.TradeTime.Equal(at.Truncate(time.Second)) {
			t.Fatalf("row %d %+v, want %s %s %d %s", i, row, no, txn, fen, at)
		}
	}
}

// The sandbox's own refunds are in the bill of the day WeChat accepted
// them, in the bill's words for their status.
func TestBillHasSandboxRefunds(t *testing.T) {
	base, _, s := newBillSim(t)
	for _, r := range []struct {
		no, status string
		fen        int64
	}{{"RF-PROC", "", 100}, {"RF-CLOSED", "CLOSED", 200}} {
		a := s.refunds.apply(refundRequest{OutTradeNo: "BILL00001", OutRefundNo: r.no, AmountFen: r.fen, TotalFen: 1234, Source: refundSourceAPI},
			billTestDay.Add(21*time.Hour), time.Hour)
		if a.status != http.StatusOK {
			t.Fatalf("refund %s: %+v", r.no, a)
		}
		if r.status != "" {
			s.trades.mu.Lock()
			s.refunds.byNo[r.no].status = r.status
			s.trades.mu.Unlock()
		}
	}
	c := &apiv2.Client{BaseURL: base, AppID: testAppID, MchID: testMchID, APIKey: config.NewSecret(s.cfg.APIKey)}
	body, err := c.OpenBill(context.Background(), wechatpay.BillLink{Date: "2026-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	text := gunzip(t, body)
	body.Close()
	s.trades.mu.Lock()
	id := s.refunds.byNo["RF-PROC"].refundID
	s.trades.mu.Unlock()
	for _, want := range []string{
		",`REFUND,`OTHERS,`CNY,`0.00,`0.00,`" + id + ",`RF-PROC,`1.00,`0.00,`ORIGINAL,`PROCESSING,`",
		",`RF-CLOSED,`2.00,`0.00,`ORIGINAL,`REFUNDCLOSE,`",
		"`4,`12.35,`3.00,`0.00,`0.05000,`12.35,`3.00\r\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("bill lacks %q:\n%s", want, text)
		}
	}
}
