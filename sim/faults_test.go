package sim

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// newFaultSim starts a sandbox with the test keys and returns it with its
// base URL; FaultSlow waits 50 ms instead of 4.5 s.
func newFaultSim(t *testing.T, notifyURL, notifyURLV3 string, mod func(*Config)) (*Server, string) {
	t.Helper()
	kf := testKeys(t)
	cfg := Config{AppID: testAppID, MchID: testMchID, APIKey: testKey, KeysDir: kf.Dir, NotifyURL: notifyURL,
		NotifyURLV3: notifyURLV3, TimeScale: 0.0001}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.faults.slow = 50 * time.Millisecond
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(s.Close)
	t.Cleanup(srv.Close)
	return s, srv.URL
}

// rawV3 makes a signed v3 request naming the primary key in
// Wechatpay-Serial and returns the answer unverified.
func rawV3(t *testing.T, m merchant, base, method, uri string, body any) (*http.Response, []byte) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "NONCE"+randomAlnum(27)
	sig, err := apiv3.SignMessage(m.key, apiv3.RequestMessage(method, uri, ts, nonce, raw))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, base+uri, bytes.NewReader(raw))
	req.Header.Set("Authorization", `WECHATPAY2-SHA256-RSA2048 mchid="`+testMchID+`",nonce_str="`+nonce+
		`",timestamp="`+ts+`",serial_no="`+m.kf.MchCertSerial+`",signature="`+sig+`"`)
	req.Header.Set("Wechatpay-Serial", m.kf.PublicKeyID)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

// sdkValidates runs an answer through the official SDK's response
// validator with the merchant's configured primary key.
func sdkValidates(t *testing.T, kf KeyFiles, resp *http.Response, body []byte) error {
	t.Helper()
	r := *resp
	r.Body = io.NopCloser(bytes.NewReader(body))
	return validators.NewWechatPayResponseValidator(sdkVerifier(t, kf, kf.PublicKeyID)).Validate(context.Background(), &r)
}

func addFault(t *testing.T, base string, rule FaultRule) {
	t.Helper()
	if status, out := postJSON(t, base+"/sim/faults", rule); status != http.StatusCreated {
		t.Fatalf("POST /sim/faults %+v: %d %s", rule, status, out)
	}
}

func faultsView(t *testing.T, base string) FaultsView {
	t.Helper()
	resp, err := http.Get(base + "/sim/faults")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v FaultsView
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Each v3 fault, as the merchant receives it, judged by the official SDK:
// WeChat's signed answers verify, the others do not. The fault changes
// nothing at "WeChat": the next call gets the real answer.
func TestV3Faults(t *testing.T) {
	m := newMerchant(t)
	_, base := newFaultSim(t, "http://127.0.0.1:1/n", "http://127.0.0.1:1/n3", nil)
	if status, out := m.call(t, base, "POST", "/v3/pay/transactions/native", prepayBody("fault-v3-1", 100, "")); status != 200 {
		t.Fatalf("prepay: %d %s", status, out)
	}
	uri := "/v3/pay/transactions/out-trade-no/fault-v3-1?mchid=" + testMchID
	for _, tc := range []struct {
		kind   string
		status int
		code   string // the JSON code, "" for none
		signed bool   // verifies with the SDK
		check  func(t *testing.T, h http.Header)
	}{
		{FaultRateLimited, 429, "FREQUENCY_LIMITED", true, nil},
		{FaultSystemError, 500, "SYSTEM_ERROR", true, nil},
		{FaultAccepted, 202, "", true, nil},
		{FaultUnavailable, 503, "", false, nil},
		{FaultForbidden, 403, "", false, nil},
		{FaultNotFound, 404, "", false, nil},
		{FaultUnsignedDecision, 404, "ORDER_NOT_EXIST", false, nil},
		{FaultSystemErrorUnsigned, 500, "SYSTEM_ERROR", false, nil},
		{FaultBadSignature, 200, "", false, nil},
		{FaultUnknownKey, 200, "", false, func(t *testing.T, h http.Header) {
			if h.Get("Wechatpay-Serial") != unknownKeyID {
				t.Errorf("serial %q", h.Get("Wechatpay-Serial"))
			}
		}},
		{FaultClockSkew, 200, "", false, func(t *testing.T, h http.Header) {
			ts, _ := strconv.ParseInt(h.Get("Wechatpay-Timestamp"), 10, 64)
			if d := time.Since(time.Unix(ts, 0)); d < 9*time.Minute || d > 11*time.Minute {
				t.Errorf("timestamp %s off", d)
			}
		}},
		{FaultSlow, 200, "", true, nil},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			addFault(t, base, FaultRule{Call: "v3.query", Kind: tc.kind, OutTradeNo: "fault-v3-1"})
			queries := getTrade(t, base, "fault-v3-1").Queries
			start := time.Now()
			resp, body := rawV3(t, m, base, "GET", uri, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.code != "" {
				var e v3Error
				if json.Unmarshal(body, &e); e.Code != tc.code {
					t.Errorf("body %s, want code %s", body, tc.code)
				}
			}
			err := sdkValidates(t, m.kf, resp, body)
			if (err == nil) != tc.signed {
				t.Errorf("the SDK's validator says %v; want it signed: %v", err, tc.signed)
			}
			if !tc.signed && resp.StatusCode >= 400 && resp.Header.Get("Wechatpay-Signature") != "" {
				t.Errorf("an unsigned fault carries a signature")
			}
			if tc.check != nil {
				tc.check(t, resp.Header)
			}
			if tc.kind == FaultSlow && time.Since(start) < 50*time.Millisecond {
				t.Error("not slow")
			}
			want := queries
			if tc.kind == FaultSlow || tc.kind == FaultBadSignature || tc.kind == FaultUnknownKey || tc.kind == FaultClockSkew {
				want++ // the real query ran; its answer was spoiled on the way
			}
			if got := getTrade(t, base, "fault-v3-1").Queries; got != want {
				t.Errorf("queries %d, want %d", got, want)
			}
			// The next call is answered for real, and verifies.
			resp, body = rawV3(t, m, base, "GET", uri, nil)
			if resp.StatusCode != 200 || sdkValidates(t, m.kf, resp, body) != nil {
				t.Fatalf("after the fault: %d %s", resp.StatusCode, body)
			}
		})
	}
	v := faultsView(t, base)
	if v.Total != 12 || v.Injected["v3.query"][FaultRateLimited] != 1 || v.Injected["v3.query"][FaultSlow] != 1 || len(v.Rules) != 0 {
		t.Errorf("faults view %+v", v)
	}
	// Close and prepay get the decisive words that fit them, unsigned.
	addFault(t, base, FaultRule{Call: "v3.close", Kind: FaultUnsignedDecision})
	resp, body := rawV3(t, m, base, "POST", "/v3/pay/transactions/out-trade-no/fault-v3-1/close", map[string]string{"mchid": testMchID})
	if resp.StatusCode != 400 || !strings.Contains(string(body), "ORDER_CLOSED") || sdkValidates(t, m.kf, resp, body) == nil {
		t.Errorf("unsigned ORDER_CLOSED: %d %s", resp.StatusCode, body)
	}
	if v := getTrade(t, base, "fault-v3-1"); v.TradeState != "NOTPAY" || v.Closes != 0 {
		t.Errorf("the trade changed: %+v", v)
	}
}

// refSign is WeChat's v2 signature written out here from the published
// rule, to judge the sandbox's v2 answers without the sandbox's or the
// client's code.
func refSign(p map[string]string, key, signType string) string {
	var ks []string
	for k, v := range p {
		if k != "sign" && v != "" {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, k+"="+p[k])
	}
	s := strings.Join(parts, "&") + "&key=" + key
	if signType == apiv2.SignTypeHMACSHA256 {
		m := hmac.New(sha256.New, []byte(key))
		m.Write([]byte(s))
		return strings.ToUpper(hex.EncodeToString(m.Sum(nil)))
	}
	sum := md5.Sum([]byte(s))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// rawV2 posts a v2 call signed with MD5 (refSign) and returns the answer.
func rawV2(t *testing.T, base, path string, params map[string]string) (int, []byte) {
	t.Helper()
	params["appid"], params["mch_id"], params["nonce_str"] = testAppID, testMchID, newNonce()
	params["sign"] = refSign(params, testKey, "")
	resp, err := http.Post(base+path, "text/xml", bytes.NewReader(apiv2.EncodeXML(params)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestV2Faults(t *testing.T) {
	_, base := newFaultSim(t, "http://127.0.0.1:1/n", "", nil)
	pay(t, base, PayRequest{OutTradeNo: "fault-v2-1", AmountFen: 100, Drop: true})
	for _, tc := range []struct {
		kind    string
		status  int
		errCode string // result_code FAIL err_code, "" for none
		signed  bool
		ids     bool // appid and mch_id present
	}{
		{FaultRateLimited, 200, "FREQUENCY_LIMITED", true, true},
		{FaultSystemError, 200, "SYSTEMERROR", true, true},
		{FaultSystemErrorUnsigned, 200, "SYSTEMERROR", false, false},
		{FaultUnsignedDecision, 200, "ORDERNOTEXIST", false, true},
		{FaultBadSignature, 200, "", false, true},
		{FaultUnavailable, 503, "", false, false},
		{FaultForbidden, 403, "", false, false},
		{FaultNotFound, 404, "", false, false},
		{FaultAccepted, 202, "", false, false},
		{FaultSlow, 200, "", true, true},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			addFault(t, base, FaultRule{Call: "v2.orderquery", Kind: tc.kind, OutTradeNo: "fault-v2-1"})
			status, body := rawV2(t, base, "/pay/orderquery", map[string]string{"out_trade_no": "fault-v2-1"})
			if status != tc.status {
				t.Fatalf("status %d %s", status, body)
			}
			if status != 200 {
				if bytes.Contains(body, []byte("return_code")) {
					t.Errorf("a proxy page looks like WeChat: %s", body)
				}
				return
			}
			p, err := apiv2.DecodeXML(body)
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if p["return_code"] != "SUCCESS" || p["err_code"] != tc.errCode || (p["result_code"] == "FAIL") != (tc.errCode != "") {
				t.Errorf("answer %v", p)
			}
			if signed := p["sign"] != "" && p["sign"] == refSign(p, testKey, ""); signed != tc.signed {
				t.Errorf("signed %v, want %v: %v", signed, tc.signed, p)
			}
			if (p["appid"] == testAppID && p["mch_id"] == testMchID) != tc.ids {
				t.Errorf("ids in %v", p)
			}
		})
	}
	// v2 has no key ids and no timestamps: those faults do not exist there.
	for _, kind := range []string{FaultUnknownKey, FaultClockSkew, FaultProbe} {
		if status, out := postJSON(t, base+"/sim/faults", FaultRule{Call: "v2.orderquery", Kind: kind}); status != 400 {
			t.Errorf("%s on v2: %d %s", kind, status, out)
		}
	}
}

// Rules are per call, per trade, for a number of calls; "*" is every API
// call; DELETE drops what is pending; bad rules are refused.
func TestFaultRules(t *testing.T) {
	_, base := newFaultSim(t, "http://127.0.0.1:1/n", "", nil)
	for _, no := range []string{"rule-1", "rule-2"} {
		pay(t, base, PayRequest{OutTradeNo: no, AmountFen: 1, Drop: true})
	}
	query := func(no string) string {
		status, body := rawV2(t, base, "/pay/orderquery", map[string]string{"out_trade_no": no})
		p, _ := apiv2.DecodeXML(body)
		if status != 200 {
			return strconv.Itoa(status)
		}
		return p["result_code"] + p["err_code"]
	}
	addFault(t, base, FaultRule{Call: "v2.orderquery", Kind: FaultSystemError, Times: 2, OutTradeNo: "rule-1"})
	got := []string{query("rule-2"), query("rule-1"), query("rule-1"), query("rule-1")}
	if want := []string{"SUCCESS", "FAILSYSTEMERROR", "FAILSYSTEMERROR", "SUCCESS"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("answers %v, want %v", got, want)
	}
	addFault(t, base, FaultRule{Call: "*", Kind: FaultUnavailable, Times: -1})
	if query("rule-2") != "503" || query("rule-1") != "503" {
		t.Error("* did not reach every call")
	}
	if v := faultsView(t, base); len(v.Rules) != 1 || v.Rules[0].Times != -1 {
		t.Errorf("rules %+v", v.Rules)
	}
	req, _ := http.NewRequest(http.MethodDelete, base+"/sim/faults", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("DELETE: %v %v", resp, err)
	}
	if query("rule-2") != "SUCCESS" {
		t.Error("rules survived DELETE")
	}
	if v := faultsView(t, base); v.Total != 4 || v.Injected["v2.orderquery"][FaultUnavailable] != 2 {
		t.Errorf("counts %+v", v)
	}
	for _, bad := range []any{
		FaultRule{Call: "v9.nothing", Kind: FaultSystemError},
		FaultRule{Call: "v2.orderquery", Kind: "gremlins"},
		FaultRule{Call: "*", Kind: FaultProbe},
		FaultRule{Call: "v2.orderquery", Kind: FaultSystemError, Times: -2},
		map[string]any{},
		map[string]any{"call": "v2.orderquery", "kind": "system_error", "rules": []FaultRule{{Call: "v2.orderquery", Kind: "slow"}}},
		map[string]any{"call": "v2.orderquery", "kind": "system_error", "extra": 1},
	} {
		if status, out := postJSON(t, base+"/sim/faults", bad); status != 400 {
			t.Errorf("%v: %d %s", bad, status, out)
		}
	}
	// Through /sim/pay: rules for that trade only.
	pay(t, base, PayRequest{OutTradeNo: "rule-3", AmountFen: 1, Drop: true,
		Faults: []FaultRule{{Call: "v2.orderquery", Kind: FaultNotFound}}})
	if query("rule-1") != "SUCCESS" || query("rule-3") != "404" || query("rule-3") != "SUCCESS" {
		t.Error("a /sim/pay rule reached another trade or stayed")
	}
}

// The random model is seeded: the same seed faults the same calls.
func TestFaultsRandomSeed(t *testing.T) {
	run := func(seed int64) (string, FaultsView) {
		_, base := newFaultSim(t, "http://127.0.0.1:1/n", "", func(c *Config) {
			c.FaultRate, c.FaultSeed, c.FaultCalls, c.FaultKinds = 0.5, seed, []string{"v2.orderquery"}, []string{FaultSystemError, FaultUnavailable}
		})
		pay(t, base, PayRequest{OutTradeNo: "seed-1", AmountFen: 1, Drop: true})
		var seq []string
		for range 40 {
			status, body := rawV2(t, base, "/pay/orderquery", map[string]string{"out_trade_no": "seed-1"})
			p, _ := apiv2.DecodeXML(body)
			seq = append(seq, strconv.Itoa(status)+p["err_code"])
		}
		return strings.Join(seq, ","), faultsView(t, base)
	}
	a, va := run(42)
	b, _ := run(42)
	c, _ := run(7)
	if a != b {
		t.Fatalf("seed 42 twice:\n%s\n%s", a, b)
	}
	if a == c {
		t.Error("seeds 42 and 7 fault the same calls")
	}
	n := va.Injected["v2.orderquery"][FaultSystemError] + va.Injected["v2.orderquery"][FaultUnavailable]
	if va.Seed != 42 || va.Rate != 0.5 || va.Total != n || n < 8 || n > 32 {
		t.Errorf("view %+v", va)
	}
	if strings.Count(a, "200SYSTEMERROR")+strings.Count(a, "503") != n {
		t.Errorf("counted %d faults, answered %s", n, a)
	}
	// Without SIM_FAULT_SEED the seed comes from the clock and is shown.
	_, base := newFaultSim(t, "http://127.0.0.1:1/n", "", nil)
	if v := faultsView(t, base); v.Seed == 0 || v.Rate != 0 || v.Total != 0 || len(v.Calls) < 6 {
		t.Errorf("default view %+v", v)
	}
	if _, err := New(Config{AppID: testAppID, MchID: testMchID, APIKey: testKey, NotifyURL: "http://127.0.0.1:1/n",
		FaultCalls: []string{"v2.nothing"}}, nil); err == nil {
		t.Error("unknown SIM_FAULT_CALLS accepted")
	}
}

// A probe comes before the notification; the merchant must refuse it, and
// the official SDK refuses it too.
func TestProbeAndDuplicates(t *testing.T) {
	m := newMerchant(t)
	var probes, real int
	rc := newV3Receiver(t, nil)
	rc.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.headers, rc.bodies = append(rc.headers, r.Header.Clone()), append(rc.bodies, body)
		if strings.HasPrefix(r.Header.Get("Wechatpay-Signature"), "WECHATPAY/SIGNTEST/") {
			probes++
			rc.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		real++
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	_, base := newFaultSim(t, "http://127.0.0.1:1/n", rc.srv.URL, nil)
	pay(t, base, PayRequest{OutTradeNo: "probe-1", AmountFen: 5, Version: "v3", Probe: true,
		Faults: []FaultRule{{Call: NotifyV3, Kind: FaultDuplicate}}})
	var v TradeView
	deadline := time.Now().Add(10 * time.Second)
	for {
		v = getTrade(t, base, "probe-1")
		// A duplicate is two or three copies sent at once: wait for every
		// one (the last may be done before the one in the middle).
		if len(v.Probes) == 1 && len(v.Deliveries) >= 2 && allDone(v.Deliveries) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trade %+v", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if p := v.Probes[0]; p.Accepted || p.HTTPStatus != 401 {
		t.Errorf("probe %+v", p)
	}
	h, body := rc.get(0)
	if !strings.HasPrefix(h.Get("Wechatpay-Signature"), "WECHATPAY/SIGNTEST/") {
		t.Fatalf("first request is not the probe: %v", h)
	}
	if _, err := sdkParse(t, m.kf, m.kf.PublicKeyID, h, body, new(map[string]any)); err == nil {
		t.Error("the SDK accepts the probe")
	}
	rc.mu.Lock()
	gotProbes, gotReal := probes, real
	rc.mu.Unlock()
	if gotProbes != 1 || gotReal != len(v.Deliveries) || gotReal < 2 {
		t.Errorf("%d probes, %d notifications, %d deliveries", gotProbes, gotReal, len(v.Deliveries))
	}
	fv := faultsView(t, base)
	if fv.Injected[NotifyV3][FaultProbe] != 1 || fv.Injected[NotifyV3][FaultDuplicate] != 1 {
		t.Errorf("counts %+v", fv.Injected)
	}
}

// allDone reports whether every delivery has ended.
func allDone(ds []DeliveryView) bool {
	for _, d := range ds {
		if !d.Done {
			return false
		}
	}
	return true
}

// v2 notifications are signed as WeChat signs them: an HMAC-SHA256
// order's carries no sign_type and a 64-digit sign; some MD5 ones carry
// sign_type=MD5 (then signed); the operator may force either.
func TestV2NotificationSignType(t *testing.T) {
	rc := newReceiver(t, nil)
	_, base := newFaultSim(t, rc.srv.URL, "", nil)
	c := client(base, apiv2.SignTypeHMACSHA256)
	req := prepayNative("hmac-0001", rc.srv.URL)
	if _, err := c.Prepay(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var withMD5, withoutMD5 string
	for i := 0; withMD5 == "" || withoutMD5 == ""; i++ {
		no := fmt.Sprintf("md5-%04d", i)
		if md5CarriesSignType(no) {
			withMD5 = no
		} else {
			withoutMD5 = no
		}
	}
	for _, tc := range []struct {
		no, signType, field string
		wantAlg             string
		wantField           bool
	}{
		{"hmac-0001", "", "", apiv2.SignTypeHMACSHA256, false}, // follows the prepay
		{withMD5, "", "", apiv2.SignTypeMD5, true},
		{withoutMD5, "", "", apiv2.SignTypeMD5, false},
		{"hmac-0002", apiv2.SignTypeHMACSHA256, "include", apiv2.SignTypeHMACSHA256, true},
		{withMD5 + "x", apiv2.SignTypeMD5, "omit", apiv2.SignTypeMD5, false},
	} {
		t.Run(tc.no, func(t *testing.T) {
			before := len(rc.received())
			pay(t, base, PayRequest{OutTradeNo: tc.no, AmountFen: 99, SignType: tc.signType, SignTypeField: tc.field})
			waitDone(t, base, tc.no, 1)
			p, err := apiv2.DecodeXML(rc.received()[before])
			if err != nil {
				t.Fatal(err)
			}
			st, has := p["sign_type"]
			if has != tc.wantField || (has && st != tc.wantAlg) {
				t.Errorf("sign_type %q present %v", st, has)
			}
			if p["sign"] != refSign(p, testKey, tc.wantAlg) {
				t.Errorf("sign %s is not %s over the fields", p["sign"], tc.wantAlg)
			}
		})
	}
}

func prepayNative(no, notifyURL string) payment.PrepayRequest {
	return payment.PrepayRequest{OutTradeNo: no, Description: "测试", AmountFen: 99, TradeType: payment.TradeTypeNative,
		NotifyURL: notifyURL, TimeExpire: time.Now().Add(time.Hour)}
}

// The sandbox's own v2 signer reproduces WeChat's published vectors
// (签名算法 example; wechatpay-vectors.json v2_notify).
func TestV2SignPublishedVectors(t *testing.T) {
	doc := map[string]string{"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000", "body": "test", "nonce_str": "ibuaiVcKdpRxkhJA"}
	notify := map[string]string{"appid": "wx2421b1c4370ec43b", "attach": "支付测试", "bank_type": "CFT", "cash_fee": "1", "coupon_fee": "",
		"fee_type": "CNY", "is_subscribe": "Y", "mch_id": "10000100", "nonce_str": "5d2b6c2a8db53831f7eda20af46e531c",
		"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "out_trade_no": "1409811653", "result_code": "SUCCESS", "return_code": "SUCCESS",
		"sub_mch_id": "", "time_end": "20140903131540", "total_fee": "1", "trade_type": "JSAPI", "transaction_id": "1004400740201409030005092168"}
	const key = "192006250b4c09247ec02edce69f6a2d"
	for _, tc := range []struct {
		p        map[string]string
		signType string
		want     string
	}{
		{doc, "MD5", "9A0A8659F005D6984697E2CA0A9CF3B7"},
		{doc, "", "9A0A8659F005D6984697E2CA0A9CF3B7"},
		{doc, "HMAC-SHA256", "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"},
		{notify, "MD5", "BC4F3B7658A9F36E0DC59D112252377A"},
		{notify, "HMAC-SHA256", "ABCA892F4A675F68C82869EF4619F655CD0E85F890868AE165498E6C013ACD98"},
	} {
		if got, err := signV2(tc.p, key, tc.signType); err != nil || got != tc.want {
			t.Errorf("signV2(%s) = %s, %v; want %s", tc.signType, got, err, tc.want)
		}
	}
	if err := checkV2Request(map[string]string{"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000", "body": "test",
		"nonce_str": "ibuaiVcKdpRxkhJA", "sign": "9A0A8659F005D6984697E2CA0A9CF3B7"}, key); err != nil {
		t.Errorf("published MD5 request: %v", err)
	}
}

// A v2 close sooner than 5 minutes (scaled) after the order is refused
// with a signed SYSTEMERROR and leaves the trade open; later it closes.
func TestV2CloseTooEarly(t *testing.T) {
	_, base := newFaultSim(t, "http://127.0.0.1:1/n", "", func(c *Config) { c.TimeScale = 0.001 }) // 300 ms
	c := client(base, apiv2.SignTypeHMACSHA256)
	if _, err := c.Prepay(context.Background(), prepayNative("early-0001", "http://127.0.0.1:1/n")); err != nil {
		t.Fatal(err)
	}
	status, body := rawV2(t, base, "/pay/closeorder", map[string]string{"out_trade_no": "early-0001"})
	p, _ := apiv2.DecodeXML(body)
	if status != 200 || p["result_code"] != "FAIL" || p["err_code"] != "SYSTEMERROR" || p["sign"] != refSign(p, testKey, "") {
		t.Fatalf("early close: %d %v", status, p)
	}
	if v := getTrade(t, base, "early-0001"); v.TradeState != "NOTPAY" || v.ClosedAt != nil {
		t.Fatalf("closed too early: %+v", v)
	}
	time.Sleep(closeWindow(0.001))
	if err := c.CloseOrder(context.Background(), "early-0001"); err != nil {
		t.Fatalf("close after the window: %v", err)
	}
	if v := getTrade(t, base, "early-0001"); v.TradeState != "CLOSED" {
		t.Fatalf("trade %+v", v)
	}
	if fv := faultsView(t, base); fv.Behaviours["close_too_early"] != 1 || fv.Total != 0 {
		t.Errorf("view %+v", fv)
	}
}

// Replies WeChat counts as failures: XML with whitespace between its tags
// too; each is counted and the notification sent again.
func TestRepliesWithWhitespace(t *testing.T) {
	for name, reply := range map[string]string{
		"newlines":                 "<xml>\n<return_code><![CDATA[SUCCESS]]></return_code>\n<return_msg><![CDATA[OK]]></return_msg>\n</xml>",
		"indented":                 "<xml>  <return_code>SUCCESS</return_code></xml>",
		"text":                     "<xml>ok<return_code>SUCCESS</return_code></xml>",
		"declaration then newline": "<?xml version=\"1.0\"?>\n<xml><return_code>SUCCESS</return_code>\n</xml>",
	} {
		t.Run(name, func(t *testing.T) {
			rc := newReceiver(t, func(n int) (int, string) {
				if n == 1 {
					return 200, reply
				}
				return 200, goodReply
			})
			_, base := newFaultSim(t, rc.srv.URL, "", nil)
			pay(t, base, PayRequest{OutTradeNo: "reply-0001", AmountFen: 1})
			d := waitDone(t, base, "reply-0001", 1).Deliveries[0]
			if len(d.Attempts) != 2 || d.Attempts[0].Accepted || !d.Delivered {
				t.Fatalf("delivery %+v", d)
			}
			if v := faultsView(t, base); v.Behaviours["reply_refused"] != 1 {
				t.Errorf("behaviours %v", v.Behaviours)
			}
		})
	}
	// Surrounding whitespace alone is fine; so is a declaration.
	for _, ok := range []string{goodReply + "\n", "<?xml version=\"1.0\" encoding=\"UTF-8\"?>" + goodReply} {
		if good, why := v2Accepted(200, []byte(ok)); !good {
			t.Errorf("%q refused: %s", ok, why)
		}
	}
}
