package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

func TestLoadOrderActivity(t *testing.T) {
	e := newActEnv(t)
	ctx := context.Background()

	var res LoadOrderResult
	if err := e.run(t, e.a.LoadOrder, LoadOrderInput{OutTradeNo: "LO-NONE01"}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Found || res.Settings != e.a.Settings {
		t.Errorf("unknown order: %+v, want not found with the worker's settings", res)
	}

	exp := envNow.Add(15 * time.Minute)
	if _, err := e.st.CreateOrder(ctx, store.NewOrder{OutTradeNo: "LO-NATIVE1", AmountFen: 250, Description: "tea",
		ExpiresAt: exp, TradeType: payment.TradeTypeNative}); err != nil {
		t.Fatal(err)
	}
	if err := e.run(t, e.a.LoadOrder, LoadOrderInput{OutTradeNo: "LO-NATIVE1"}, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Found || res.Status != payment.StatusPending || res.AmountFen != 250 || res.TradeType != payment.TradeTypeNative ||
		res.ExpiresAt == nil || !res.ExpiresAt.Equal(exp) || res.CreatedAt.IsZero() || res.TransactionID != "" ||
		len(res.OpenRefunds) != 0 || res.Settings != e.a.Settings {
		t.Errorf("pending order: %+v", res)
	}

	// A paid order with a refund not final yet: the run follows it.
	e.order(t, "LO-PAID01", 1000, payment.StatusPaid)
	if _, err := e.st.AcceptRefund(ctx, store.AcceptRefundParams{MchID: refundMch, OutTradeNo: "LO-PAID01", OutRefundNo: "LO-RF1",
		AmountFen: 400, Source: payment.RefundSourceAPI}); err != nil {
		t.Fatal(err)
	}
	res = LoadOrderResult{}
	if err := e.run(t, e.a.LoadOrder, LoadOrderInput{OutTradeNo: "LO-PAID01"}, &res); err != nil {
		t.Fatal(err)
	}
	if !res.Found || res.Status != payment.StatusPaid || res.TransactionID != "tx-LO-PAID01" || res.PaidFen != 1000 ||
		res.RefundedFen != 0 || res.ExpiresAt != nil || len(res.OpenRefunds) != 1 || res.OpenRefunds[0].OutRefundNo != "LO-RF1" ||
		res.OpenRefunds[0].Status != payment.RefundProcessing {
		t.Errorf("paid order: %+v", res)
	}
}

// fingerprint is sha256 of the prepay request's JSON, the form prepays
// are stored under: without the notify URL now, with it before (legacy).
func fingerprint(t *testing.T, req payment.PrepayRequest, withNotifyURL bool) string {
	t.Helper()
	if !withNotifyURL {
		req.NotifyURL = ""
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestPrepayActivity(t *testing.T) {
	e := newActEnv(t)
	ctx := context.Background()
	exp := time.Date(2026, 11, 26, 10, 30, 0, 0, time.FixedZone("CST", 8*3600))
	create := func(no, tradeType, openid string) payment.PrepayRequest {
		t.Helper()
		if _, err := e.st.CreateOrder(ctx, store.NewOrder{OutTradeNo: no, AmountFen: 880, Description: "green tea",
			ExpiresAt: exp, TradeType: tradeType, OpenID: openid}); err != nil {
			t.Fatal(err)
		}
		// The request WeChat must get: the stored order's own parameters.
		return payment.PrepayRequest{OutTradeNo: no, Description: "green tea", AmountFen: 880, Currency: payment.DefaultCurrency,
			TradeType: tradeType, OpenID: openid, NotifyURL: e.a.NotifyURL, TimeExpire: exp.UTC()}
	}
	prepays := func() int {
		e.wc.mu.Lock()
		defer e.wc.mu.Unlock()
		return len(e.wc.prepays)
	}

	t.Run("once, from the stored order; a retry gets the first answer", func(t *testing.T) {
		want := create("PP-NATIVE1", payment.TradeTypeNative, "")
		var res PrepayResult
		if err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-NATIVE1"}, &res); err != nil {
			t.Fatal(err)
		}
		if len(e.wc.prepays) != 1 || e.wc.prepays[0] != want {
			t.Fatalf("WeChat got %+v, want %+v", e.wc.prepays, want)
		}
		if res.Prepay.CodeURL != "weixin://wxpay/bizpayurl?pr=PP-NATIVE1" {
			t.Errorf("prepay %+v", res.Prepay)
		}
		if o := e.get(t, "PP-NATIVE1"); o.CodeURL != res.Prepay.CodeURL {
			t.Errorf("the order shows code_url %q", o.CodeURL)
		}
		e.wc.prepay = func(payment.PrepayRequest) (payment.Prepay, error) {
			return payment.Prepay{CodeURL: "weixin://another"}, nil
		}
		defer func() { e.wc.prepay = nil }()
		var again PrepayResult
		if err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-NATIVE1"}, &again); err != nil || again.Prepay != res.Prepay || prepays() != 1 {
			t.Fatalf("retry: %+v %v, %d prepays at WeChat", again, err, prepays())
		}
	})

	t.Run("a new notify URL is the same prepay", func(t *testing.T) {
		old := e.a.NotifyURL
		e.a.NotifyURL = "https://new.m.example/wechatpay/notify"
		defer func() { e.a.NotifyURL = old }()
		var res PrepayResult
		if err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-NATIVE1"}, &res); err != nil || res.Prepay.CodeURL != "weixin://wxpay/bizpayurl?pr=PP-NATIVE1" || prepays() != 1 {
			t.Fatalf("after a notify URL change: %+v %v, %d prepays at WeChat", res, err, prepays())
		}
	})

	t.Run("a prepay stored under the legacy fingerprint still matches", func(t *testing.T) {
		req := create("PP-LEGACY1", payment.TradeTypeNative, "")
		stored := payment.Prepay{PrepayID: "wx-legacy", CodeURL: "weixin://legacy"}
		if _, err := e.st.SavePrepay(ctx, "PP-LEGACY1", fingerprint(t, req, true), stored); err != nil {
			t.Fatal(err)
		}
		before := prepays()
		var res PrepayResult
		if err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-LEGACY1"}, &res); err != nil || res.Prepay != stored || prepays() != before {
			t.Fatalf("legacy: %+v %v, %d new prepays", res, err, prepays()-before)
		}
	})

	t.Run("prepaid before with other parameters: refused, never prepaid twice", func(t *testing.T) {
		req := create("PP-EDITED1", payment.TradeTypeNative, "")
		req.AmountFen = 1 // the order as it was when first prepaid
		if _, err := e.st.SavePrepay(ctx, "PP-EDITED1", fingerprint(t, req, false), payment.Prepay{CodeURL: "weixin://first"}); err != nil {
			t.Fatal(err)
		}
		before := prepays()
		appErr(t, e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-EDITED1"}, nil), ErrTypePrepayConflict)
		if prepays() != before {
			t.Error("WeChat was asked again")
		}
	})

	t.Run("JSAPI: the payer's openid goes to WeChat, the JSAPI parameters are kept", func(t *testing.T) {
		want := create("PP-JSAPI01", payment.TradeTypeJSAPI, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")
		params := &payment.JSAPIParams{AppID: envAppID, TimeStamp: "1764151200", NonceStr: "n", Package: "prepay_id=wx1", SignType: "RSA", PaySign: "s"}
		e.wc.prepay = func(payment.PrepayRequest) (payment.Prepay, error) {
			return payment.Prepay{PrepayID: "wx1", JSAPI: params}, nil
		}
		defer func() { e.wc.prepay = nil }()
		var res PrepayResult
		if err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-JSAPI01"}, &res); err != nil {
			t.Fatal(err)
		}
		if got := e.wc.prepays[len(e.wc.prepays)-1]; got != want || res.Prepay.JSAPI == nil || *res.Prepay.JSAPI != *params {
			t.Errorf("WeChat got %+v, answer %+v", got, res.Prepay)
		}
		if o := e.get(t, "PP-JSAPI01"); o.JSAPI == nil || *o.JSAPI != *params {
			t.Errorf("the order shows %+v", o.JSAPI)
		}
	})

	faults := func() float64 { return e.count(metrics.WeChatFaultsName, "call", "prepay") }

	t.Run("WeChat says the order is paid: confirmed, not refused", func(t *testing.T) {
		create("PP-PAID001", payment.TradeTypeNative, "")
		e.wc.prepay = func(payment.PrepayRequest) (payment.Prepay, error) { return payment.Prepay{}, signed(400, "ORDERPAID") }
		defer func() { e.wc.prepay = nil }()
		before := faults()
		appErr(t, e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-PAID001"}, nil), ErrTypeOrderPaid)
		if _, _, found, _ := e.st.GetPrepay(ctx, "PP-PAID001"); found || faults() != before {
			t.Errorf("stored a prepay %v, faults %v → %v", found, before, faults())
		}
	})

	t.Run("WeChat refuses: final, nothing kept, not a fault", func(t *testing.T) {
		create("PP-REFUSE1", payment.TradeTypeNative, "")
		e.wc.prepay = func(payment.PrepayRequest) (payment.Prepay, error) {
			return payment.Prepay{}, signed(400, "OUT_TRADE_NO_USED")
		}
		defer func() { e.wc.prepay = nil }()
		before := faults()
		err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-REFUSE1"}, nil)
		appErr(t, err, ErrTypePrepay)
		if err == nil || !strings.Contains(err.Error(), "WeChat Pay refused") || !strings.Contains(err.Error(), "OUT_TRADE_NO_USED") {
			t.Errorf("err = %v", err)
		}
		if _, _, found, _ := e.st.GetPrepay(ctx, "PP-REFUSE1"); found || faults() != before {
			t.Errorf("stored a prepay %v, faults %v → %v", found, before, faults())
		}
	})

	t.Run("faults are retried, counted, and decide nothing", func(t *testing.T) {
		create("PP-FAULT01", payment.TradeTypeNative, "")
		for _, fc := range faultCases {
			e.wc.prepay = func(payment.PrepayRequest) (payment.Prepay, error) {
				return payment.Prepay{}, fmt.Errorf("wechatpay prepay: %w", fc.err)
			}
			before := e.count(metrics.WeChatFaultsName, "call", "prepay", "kind", fc.kind)
			retryable(t, e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-FAULT01"}, nil), fc.wait)
			if got := e.count(metrics.WeChatFaultsName, "call", "prepay", "kind", fc.kind); got != before+1 {
				t.Errorf("%s: prepay faults{kind=%s} %v → %v, want +1", fc.name, fc.kind, before, got)
			}
		}
		e.wc.prepay = nil
		if _, _, found, _ := e.st.GetPrepay(ctx, "PP-FAULT01"); found {
			t.Error("a fault stored a prepay")
		}
		// Once WeChat answers, the order is prepaid as usual.
		var res PrepayResult
		if err := e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-FAULT01"}, &res); err != nil || res.Prepay.CodeURL == "" {
			t.Fatalf("after the faults: %+v %v", res, err)
		}
	})

	t.Run("unknown order: final, WeChat not asked", func(t *testing.T) {
		before := prepays()
		appErr(t, e.run(t, e.a.Prepay, PrepayInput{OutTradeNo: "PP-NONE001"}, nil), ErrTypeOrderNotFound)
		if prepays() != before {
			t.Error("WeChat was asked to prepay an order we do not have")
		}
	})
}

func TestQueryOrderActivity(t *testing.T) {
	e := newActEnv(t)
	paid := time.Date(2026, 11, 26, 9, 58, 0, 0, time.UTC)
	e.wc.trade = payment.Trade{OutTradeNo: "QO-ORDER01", TransactionID: "4200001", AppID: envAppID, MchID: refundMch,
		TradeState: "SUCCESS", AmountFen: 100, Currency: "CNY", PaidAt: paid}
	var res QueryOrderResult
	if err := e.run(t, e.a.QueryOrder, QueryOrderInput{OutTradeNo: "QO-ORDER01"}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Trade.TransactionID != "4200001" || res.Trade.TradeState != "SUCCESS" || !res.Trade.PaidAt.Equal(paid) || e.wc.queries[0] != "QO-ORDER01" {
		t.Errorf("trade %+v, asked %q", res.Trade, e.wc.queries)
	}
	faults := func() float64 { return e.count(metrics.WeChatFaultsName, "call", "query") }

	// WeChat's signed "no such order" is an answer: final, not a fault.
	e.wc.queryErr = signed(404, wechatpay.CodeOrderNotExist)
	appErr(t, e.run(t, e.a.QueryOrder, QueryOrderInput{OutTradeNo: "QO-ORDER01"}, nil), ErrTypeOrderNotExist)
	if faults() != 0 {
		t.Errorf("ORDERNOTEXIST counted as a fault")
	}
	// The same words without WeChat's signature decide nothing.
	e.wc.queryErr = &wechatpay.UnverifiedError{Op: "v3 orderquery", HTTPStatus: 404, Err: wechatpay.ErrMissingSign}
	retryable(t, e.run(t, e.a.QueryOrder, QueryOrderInput{OutTradeNo: "QO-ORDER01"}, nil), 0)

	for _, fc := range faultCases {
		e.wc.queryErr = fmt.Errorf("wechatpay orderquery: %w", fc.err)
		before := e.count(metrics.WeChatFaultsName, "call", "query", "kind", fc.kind)
		retryable(t, e.run(t, e.a.QueryOrder, QueryOrderInput{OutTradeNo: "QO-ORDER01"}, nil), fc.wait)
		if got := e.count(metrics.WeChatFaultsName, "call", "query", "kind", fc.kind); got != before+1 {
			t.Errorf("%s: query faults{kind=%s} %v → %v, want +1", fc.name, fc.kind, before, got)
		}
	}
	if got, want := faults(), float64(len(faultCases)+1); got != want {
		t.Errorf("query faults %v, want %v (each fault once, the unsigned 404 too)", got, want)
	}
}

func TestCloseAtWeChatActivity(t *testing.T) {
	e := newActEnv(t)
	faults := func() float64 { return e.count(metrics.WeChatFaultsName, "call", "close") }
	for _, tc := range []struct {
		name        string
		err         error
		notAtWeChat bool
		typ         string // a final error of this type
		retried     bool
	}{
		{name: "closed", err: nil},
		{name: "never prepaid there: nothing to close", err: signed(404, wechatpay.CodeOrderNotExist), notAtWeChat: true},
		{name: "paid: the workflow confirms it instead", err: signed(400, "ORDERPAID"), typ: ErrTypeOrderPaid},
		{name: "v3 paid", err: signed(400, "ORDER_PAID"), typ: ErrTypeOrderPaid},
		{name: "another signed refusal: the order stays open, asked again", err: signed(403, "TRADE_ERROR"), retried: true},
	} {
		e.wc.closeErr = tc.err
		var res CloseAtWeChatResult
		err := e.run(t, e.a.CloseAtWeChat, CloseAtWeChatInput{OutTradeNo: "CW-ORDER01"}, &res)
		switch {
		case tc.typ != "":
			appErr(t, err, tc.typ)
		case tc.retried:
			retryable(t, err, 0)
		case err != nil || res.NotAtWeChat != tc.notAtWeChat:
			t.Errorf("%s: %+v %v", tc.name, res, err)
		}
	}
	if faults() != 0 {
		t.Errorf("WeChat's signed answers counted as faults: %v", faults())
	}
	for _, fc := range faultCases {
		e.wc.closeErr = fmt.Errorf("wechatpay closeorder: %w", fc.err)
		before := e.count(metrics.WeChatFaultsName, "call", "close", "kind", fc.kind)
		retryable(t, e.run(t, e.a.CloseAtWeChat, CloseAtWeChatInput{OutTradeNo: "CW-ORDER01"}, nil), fc.wait)
		if got := e.count(metrics.WeChatFaultsName, "call", "close", "kind", fc.kind); got != before+1 {
			t.Errorf("%s: close faults{kind=%s} %v → %v, want +1", fc.name, fc.kind, before, got)
		}
	}
	if len(e.wc.closes) != 5+len(faultCases) {
		t.Errorf("WeChat asked to close %d times", len(e.wc.closes))
	}
}

func TestMarkClosedActivity(t *testing.T) {
	e := newActEnv(t)
	e.order(t, "MC-PENDING", 100, payment.StatusPending)
	in := MarkClosedInput{OutTradeNo: "MC-PENDING", Reason: "expired unpaid", Key: payment.KeyClosedExpired}
	var res MarkClosedResult
	if err := e.run(t, e.a.MarkClosed, in, &res); err != nil || res.Outcome != store.OutcomeClosed {
		t.Fatalf("close: %+v %v", res, err)
	}
	if err := e.run(t, e.a.MarkClosed, in, &res); err != nil || res.Outcome != store.OutcomeAlreadyClosed {
		t.Fatalf("again: %+v %v", res, err)
	}
	o := e.get(t, "MC-PENDING")
	if last := o.Logs[len(o.Logs)-1]; o.Status != payment.StatusClosed || len(o.Logs) != 2 || last.ToStatus != payment.StatusClosed || last.Remarks != "expired unpaid" {
		t.Errorf("order %s, logs %+v", o.Status, o.Logs)
	}
	if got := e.final(payment.StatusClosed); got != 1 {
		t.Errorf("CLOSED counted %v times, want 1", got)
	}

	// A payment that came first is reported, and left alone.
	for status, want := range map[payment.Status]store.ClosedOutcome{payment.StatusPaid: store.OutcomeClosedPaid, payment.StatusReview: store.OutcomeClosedReview} {
		no := "MC-" + string(status)
		before := e.order(t, no, 100, status)
		if err := e.run(t, e.a.MarkClosed, MarkClosedInput{OutTradeNo: no, Reason: "expired", Key: payment.KeyClosedExpired}, &res); err != nil || res.Outcome != want {
			t.Errorf("%s: %+v %v, want %s", status, res, err, want)
		}
		if after := e.get(t, no); after.Status != status || len(after.Logs) != len(before.Logs) {
			t.Errorf("%s changed: %s, %d logs", status, after.Status, len(after.Logs))
		}
	}
	if got := e.final(payment.StatusClosed); got != 1 {
		t.Errorf("CLOSED counted %v times, want 1", got)
	}
	appErr(t, e.run(t, e.a.MarkClosed, MarkClosedInput{OutTradeNo: "MC-NONE", Reason: "x", Key: "closed:x"}, nil), ErrTypeOrderNotFound)
}

func TestRefundableActivity(t *testing.T) {
	e := newActEnv(t)
	ctx := context.Background()
	e.order(t, "RB-PAID001", 1000, payment.StatusPaid)
	for _, r := range []struct {
		no     string
		amount int64
		status payment.RefundStatus
	}{{"RB-1", 300, payment.RefundProcessing}, {"RB-2", 200, payment.RefundSuccess}, {"RB-3", 100, payment.RefundFailed}, {"RB-4", 50, payment.RefundClosed}} {
		if _, err := e.st.AcceptRefund(ctx, store.AcceptRefundParams{MchID: refundMch, OutTradeNo: "RB-PAID001", OutRefundNo: r.no,
			AmountFen: r.amount, Source: payment.RefundSourceAPI}); err != nil {
			t.Fatal(err)
		}
		if r.status != payment.RefundProcessing {
			if _, err := e.st.MarkRefund(ctx, store.MarkRefundParams{MchID: refundMch, OutRefundNo: r.no, Status: r.status}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var res RefundableResult
	// 1000 paid, less 300 on their way and 200 refunded; the FAILED and
	// CLOSED refunds returned nothing.
	if err := e.run(t, e.a.Refundable, RefundableInput{OutTradeNo: "RB-PAID001"}, &res); err != nil || res.LeftFen != 500 || res.Refunds != 4 {
		t.Errorf("paid order: %+v %v, want 500 left of 4 refunds", res, err)
	}
	e.order(t, "RB-PENDING", 1000, payment.StatusPending)
	if err := e.run(t, e.a.Refundable, RefundableInput{OutTradeNo: "RB-PENDING"}, &res); err != nil || res.LeftFen != 0 || res.Refunds != 0 {
		t.Errorf("unpaid order: %+v %v, want nothing to refund", res, err)
	}
	appErr(t, e.run(t, e.a.Refundable, RefundableInput{OutTradeNo: "RB-NONE001"}, nil), ErrTypeOrderNotFound)
}
