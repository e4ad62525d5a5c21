package sim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// errNoTrade is returned for an out_trade_no the simulator does not know.
var errNoTrade = errors.New("unknown trade")

// errBadRequest marks an operator request that cannot be applied as given.
var errBadRequest = errors.New("bad request")

// trades is the simulator's in-memory state: WeChat's side of each trade.
// One mutex guards every trade and delivery; nothing here does I/O.
type trades struct {
	mu           sync.Mutex
	byNo         map[string]*trade
	byTxn        map[string]string // transaction_id -> out_trade_no
	lastDelivery int
}

func newTrades() *trades {
	return &trades{byNo: make(map[string]*trade), byTxn: make(map[string]string)}
}

// trade is one order as WeChat sees it.
type trade struct {
	outTradeNo    string
	amountFen     int64
	state         string // payment.Trade* constants
	transactionID string
	openID        string
	timeEnd       time.Time
	created       time.Time

	// Set by a prepay (unifiedorder, v3 jsapi/native); empty otherwise.
	version     string // "v2" or "v3": the API that prepaid it
	tradeType   string // JSAPI or NATIVE
	description string
	attach      string
	notifyURL   string
	prepayID    string
	codeURL     string
	timeExpire  time.Time // zero: no time_expire
	fingerprint string    // the prepay's parameters, to tell a repeat from a reuse
	prepays     int       // prepay calls for this out_trade_no
	closes      int       // close calls
	closedAt    time.Time
	dropped     int    // notifications not sent (drop, SIM_DROP_NOTIFICATIONS)
	signType    string // v2 prepay: the request's sign_type (MD5 when it named none), which its notification follows
	probes      []Attempt

	// Order query overrides set by the operator.
	queryState     string
	queryStateLeft int // queries still answered with queryState; -1: all of them
	queryAmountFen int64
	queries        int

	notice     *message // the last notification rendered, for late copies
	deliveries []*delivery
}

// facts is a copy of what a notification or an order query reports about
// a trade, taken under the lock; wire formats render it.
type facts struct {
	OutTradeNo    string
	TransactionID string
	State         string
	AmountFen     int64
	OpenID        string
	TimeEnd       time.Time
	TradeType     string // NATIVE unless prepaid otherwise
	Attach        string
	Version       string // the API that prepaid it, "" if none
	NotifyURL     string // the prepay's notify_url
	SignType      string // v2 prepay's sign_type, "" if none
}

// Errors of prepay, close and pay.
var (
	errOrderPaid      = errors.New("order already paid")
	errOrderClosed    = errors.New("order closed")
	errOrderExpired   = errors.New("order expired")
	errOutTradeNoUsed = errors.New("out_trade_no already used with other parameters")
)

// prepayOrder is a prepay call, in either API version.
type prepayOrder struct {
	Version     string // v2 or v3
	TradeType   string // JSAPI or NATIVE
	OutTradeNo  string
	Description string
	Attach      string
	NotifyURL   string
	OpenID      string // JSAPI
	AmountFen   int64
	TimeExpire  time.Time
	SignType    string // v2: the request's sign_type (MD5 when absent)
}

// fingerprint is what must be equal for a repeated prepay to get the same
// answer; the API version is not part of it.
func (o prepayOrder) fingerprint() string {
	exp := ""
	if !o.TimeExpire.IsZero() {
		exp = o.TimeExpire.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("%q %q %q %q %q %d %s", o.TradeType, o.Description, o.Attach, o.NotifyURL, o.OpenID, o.AmountFen, exp)
}

// prepayResult is what a prepay answers.
type prepayResult struct {
	PrepayID  string
	CodeURL   string // NATIVE only
	TradeType string
}

// prepay creates an unpaid trade, or answers a repeat of the same prepay
// as before. It fails with errOrderPaid, errOrderClosed or
// errOutTradeNoUsed.
func (s *trades) prepay(o prepayOrder, now time.Time) (prepayResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, known := s.byNo[o.OutTradeNo]
	if !known {
		t = s.create(o.OutTradeNo, o.AmountFen, now)
	}
	t.prepays++
	switch {
	case t.state == payment.TradeSuccess || t.state == payment.TradeRefund:
		return prepayResult{}, errOrderPaid
	case t.state == payment.TradeClosed:
		return prepayResult{}, errOrderClosed
	case t.fingerprint != "" && t.fingerprint != o.fingerprint():
		return prepayResult{}, errOutTradeNoUsed
	case t.fingerprint == "": // new, or made by /sim/pay without a payment
		t.version, t.tradeType, t.description, t.attach = o.Version, o.TradeType, o.Description, o.Attach
		t.notifyURL, t.amountFen, t.timeExpire, t.fingerprint = o.NotifyURL, o.AmountFen, o.TimeExpire, o.fingerprint()
		t.signType = o.SignType
		if o.OpenID != "" {
			t.openID = o.OpenID
		}
		t.prepayID = newPrepayID(now)
		if o.TradeType == "NATIVE" {
			t.codeURL = "weixin://wxpay/bizpayurl?pr=" + randomAlnum(9)
		}
	}
	return prepayResult{PrepayID: t.prepayID, CodeURL: t.codeURL, TradeType: t.tradeType}, nil
}

// close closes an unpaid trade; closing a closed one changes nothing and
// reports closed. It fails with errNoTrade or errOrderPaid.
func (s *trades) close(no string, now time.Time) (alreadyClosed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byNo[no]
	if !ok {
		return false, errNoTrade
	}
	t.closes++
	switch t.state {
	case payment.TradeSuccess, payment.TradeRefund:
		return false, errOrderPaid
	case payment.TradeClosed:
		return true, nil
	}
	t.state, t.closedAt = payment.TradeClosed, now
	return false, nil
}

// create adds an unpaid trade, or returns the existing one. It is what a
// prepay call does at WeChat. The caller holds the lock.
func (s *trades) create(no string, amountFen int64, now time.Time) *trade {
	if t, ok := s.byNo[no]; ok {
		return t
	}
	t := &trade{outTradeNo: no, amountFen: amountFen, state: payment.TradeNotPay, openID: newOpenID(), created: now}
	s.byNo[no] = t
	return t
}

// pay applies an operator's "the user paid" to the store and returns what
// the notification must say.
func (s *trades) pay(req PayRequest, now time.Time) (facts, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, known := s.byNo[req.OutTradeNo]
	if !known && req.AmountFen <= 0 {
		return facts{}, fmt.Errorf("%w: amount_fen must be > 0 for a new trade", errBadRequest)
	}
	if req.TransactionID != "" {
		if no, used := s.byTxn[req.TransactionID]; used && no != req.OutTradeNo {
			return facts{}, fmt.Errorf("transaction_id %s belongs to trade %s", req.TransactionID, no)
		}
	}
	if t == nil {
		t = s.create(req.OutTradeNo, req.AmountFen, now)
	}
	if !req.Force {
		if t.state == payment.TradeClosed {
			return facts{}, errOrderClosed
		}
		if !t.timeExpire.IsZero() && !now.Before(t.timeExpire) && t.state != payment.TradeSuccess && t.state != payment.TradeRefund {
			return facts{}, errOrderExpired
		}
	}
	if req.AmountFen > 0 {
		t.amountFen = req.AmountFen // a known trade paid with another amount: a mismatch to detect
	}
	t.queryState, t.queryStateLeft = req.QueryState, 0
	if req.QueryState != "" {
		t.queryStateLeft = req.QueryStateTimes
		if req.QueryStateTimes == 0 {
			t.queryStateLeft = -1
		}
	}
	t.queryAmountFen = req.QueryAmountFen
	if req.ResultCode == "SUCCESS" {
		txn := req.TransactionID
		for txn == "" {
			txn = newTransactionID(now)
			if _, used := s.byTxn[txn]; used {
				txn = ""
			}
		}
		t.state, t.transactionID, t.timeEnd = payment.TradeSuccess, txn, now
		s.byTxn[txn] = t.outTradeNo
	}
	return t.facts(), nil
}

func (t *trade) facts() facts {
	tradeType := t.tradeType
	if tradeType == "" {
		tradeType = "NATIVE"
	}
	return facts{OutTradeNo: t.outTradeNo, TransactionID: t.transactionID, State: t.state,
		AmountFen: t.amountFen, OpenID: t.openID, TimeEnd: t.timeEnd,
		TradeType: tradeType, Attach: t.attach, Version: t.version, NotifyURL: t.notifyURL, SignType: t.signType}
}

// query returns what an order query reports, applying and counting down
// the operator's overrides. transaction_id wins over out_trade_no, as at
// WeChat.
func (s *trades) query(outTradeNo, transactionID string) (facts, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if transactionID != "" {
		outTradeNo = s.byTxn[transactionID]
	}
	t, ok := s.byNo[outTradeNo]
	if !ok {
		return facts{}, false
	}
	t.queries++
	f := t.facts()
	if t.queryStateLeft != 0 {
		f.State = t.queryState
		if t.queryStateLeft > 0 {
			t.queryStateLeft--
		}
	}
	if t.queryAmountFen > 0 {
		f.AmountFen = t.queryAmountFen
	}
	return f, true
}

// addDeliveries records msg as the trade's notification and creates n
// deliveries of it.
func (s *trades) addDeliveries(no string, msg *message, n int) ([]*delivery, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byNo[no]
	if !ok {
		return nil, errNoTrade
	}
	if msg == nil {
		if msg = t.notice; msg == nil {
			return nil, errNoNotice
		}
	}
	t.notice = msg
	ds := make([]*delivery, n)
	for i := range ds {
		s.lastDelivery++
		ds[i] = &delivery{id: s.lastDelivery, outTradeNo: no, msg: msg}
		t.deliveries = append(t.deliveries, ds[i])
	}
	return ds, nil
}

var errNoNotice = errors.New("trade has no notification yet")

// recordDropped records msg as the trade's notification without sending
// it: a later POST /sim/trades/{no}/notify can still deliver it.
func (s *trades) recordDropped(no string, msg *message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.byNo[no]; ok {
		if msg != nil {
			t.notice = msg
		}
		t.dropped++
	}
}

// recordProbe keeps the merchant's answer to a signature probe.
func (s *trades) recordProbe(no string, a Attempt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.byNo[no]; ok {
		t.probes = append(t.probes, a)
	}
}

// openSince reports whether the trade is unpaid and open (NOTPAY and the
// like), and since when it was made at "WeChat" (its prepay).
func (s *trades) openSince(no string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byNo[no]
	if !ok || t.state == payment.TradeSuccess || t.state == payment.TradeRefund || t.state == payment.TradeClosed {
		return time.Time{}, false
	}
	return t.created, true
}

// recordAttempt appends one attempt to d and reports the attempt number.
func (s *trades) recordAttempt(d *delivery, a Attempt, done, delivered bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.attempts = append(d.attempts, a)
	d.done, d.delivered = done, delivered
}

// view renders a trade as the operator sees it.
func (s *trades) view(no string) (TradeView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.byNo[no]
	if !ok {
		return TradeView{}, false
	}
	v := TradeView{
		OutTradeNo:     t.outTradeNo,
		TransactionID:  t.transactionID,
		TradeState:     t.state,
		AmountFen:      t.amountFen,
		OpenID:         t.openID,
		CreatedAt:      t.created,
		QueryState:     t.queryState,
		QueryStateLeft: t.queryStateLeft,
		QueryAmountFen: t.queryAmountFen,
		Queries:        t.queries,
		Version:        t.version,
		TradeType:      t.tradeType,
		Description:    t.description,
		NotifyURL:      t.notifyURL,
		PrepayID:       t.prepayID,
		CodeURL:        t.codeURL,
		TimeExpire:     timePtr(t.timeExpire),
		ClosedAt:       timePtr(t.closedAt),
		TimeEnd:        timePtr(t.timeEnd),
		Prepays:        t.prepays,
		Closes:         t.closes,
		Dropped:        t.dropped,
		SignType:       t.signType,
		Probes:         append([]Attempt{}, t.probes...),
		Deliveries:     make([]DeliveryView, 0, len(t.deliveries)),
	}
	for _, d := range t.deliveries {
		v.Deliveries = append(v.Deliveries, DeliveryView{
			ID:        d.id,
			API:       d.msg.api,
			Attempts:  append([]Attempt{}, d.attempts...),
			Done:      d.done,
			Delivered: d.delivered,
		})
	}
	return v, true
}

// TradeView is a trade as GET /sim/trades/{out_trade_no} shows it.
type TradeView struct {
	OutTradeNo     string     `json:"out_trade_no"`
	TransactionID  string     `json:"transaction_id"`
	TradeState     string     `json:"trade_state"`
	AmountFen      int64      `json:"amount_fen"`
	OpenID         string     `json:"openid"`
	TimeEnd        *time.Time `json:"time_end"`
	CreatedAt      time.Time  `json:"created_at"`
	QueryState     string     `json:"query_state,omitempty"`      // order queries answer this state…
	QueryStateLeft int        `json:"query_state_left,omitempty"` // …this many more times (-1: always)
	QueryAmountFen int64      `json:"query_amount_fen,omitempty"` // order queries report this amount
	Queries        int        `json:"queries"`                    // order queries answered so far
	Version        string     `json:"version"`                    // v2 or v3: the API that prepaid it; "" if not prepaid
	TradeType      string     `json:"trade_type"`                 // JSAPI or NATIVE when prepaid
	Description    string     `json:"description,omitempty"`      // body (v2) or description (v3)
	NotifyURL      string     `json:"notify_url,omitempty"`       // the prepay's notify_url
	PrepayID       string     `json:"prepay_id,omitempty"`
	CodeURL        string     `json:"code_url,omitempty"`
	TimeExpire     *time.Time `json:"time_expire"`         // null: none
	ClosedAt       *time.Time `json:"closed_at"`           // null: not closed
	Prepays        int        `json:"prepays"`             // prepay calls (unifiedorder, v3 jsapi/native)
	Closes         int        `json:"closes"`              // close calls (closeorder, v3 close)
	Dropped        int        `json:"dropped"`             // notifications not sent (drop, SIM_DROP_NOTIFICATIONS)
	SignType       string     `json:"sign_type,omitempty"` // v2 prepay's sign_type, which its notification follows
	// Probes are the merchant's answers to signature probes
	// (WECHATPAY/SIGNTEST/…): Accepted means it took the probe for a real
	// notification (a 2xx), which it must not.
	Probes     []Attempt      `json:"probes"`
	Deliveries []DeliveryView `json:"deliveries"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// DeliveryView is one delivery of a notification: its attempts so far.
type DeliveryView struct {
	ID        int       `json:"id"`
	API       string    `json:"api"` // "v2" or "v3"
	Attempts  []Attempt `json:"attempts"`
	Done      bool      `json:"done"`      // no further attempt will be made
	Delivered bool      `json:"delivered"` // the merchant accepted it
}

// Attempt is one POST of a notification and how the merchant answered.
type Attempt struct {
	At         time.Time `json:"at"`
	HTTPStatus int       `json:"http_status"` // 0 when no answer came
	Accepted   bool      `json:"accepted"`
	Error      string    `json:"error,omitempty"` // network error or why the reply was not accepted
}

// newTransactionID returns a 28-digit WeChat-like transaction id.
func newTransactionID(now time.Time) string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(16), nil))
	return fmt.Sprintf("4200%s%016d", apiv2.FormatTime(now)[:8], n)
}

// newPrepayID returns a WeChat-like prepay_id: wx, the Beijing time and
// 20 random characters.
func newPrepayID(now time.Time) string {
	return "wx" + apiv2.FormatTime(now) + randomHex(10)
}

// newOpenID returns a 28-character openid like WeChat's.
func newOpenID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	b := make([]byte, 28)
	_, _ = rand.Read(b)
	b[0] = 'o'
	for i := 1; i < len(b); i++ {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
