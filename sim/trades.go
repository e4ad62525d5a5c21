package sim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
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
	return facts{OutTradeNo: t.outTradeNo, TransactionID: t.transactionID, State: t.state,
		AmountFen: t.amountFen, OpenID: t.openID, TimeEnd: t.timeEnd}
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
		Deliveries:     make([]DeliveryView, 0, len(t.deliveries)),
	}
	if !t.timeEnd.IsZero() {
		te := t.timeEnd
		v.TimeEnd = &te
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
	OutTradeNo     string         `json:"out_trade_no"`
	TransactionID  string         `json:"transaction_id"`
	TradeState     string         `json:"trade_state"`
	AmountFen      int64          `json:"amount_fen"`
	OpenID         string         `json:"openid"`
	TimeEnd        *time.Time     `json:"time_end"`
	CreatedAt      time.Time      `json:"created_at"`
	QueryState     string         `json:"query_state,omitempty"`      // order queries answer this state…
	QueryStateLeft int            `json:"query_state_left,omitempty"` // …this many more times (-1: always)
	QueryAmountFen int64          `json:"query_amount_fen,omitempty"` // order queries report this amount
	Queries        int            `json:"queries"`                    // order queries answered so far
	Deliveries     []DeliveryView `json:"deliveries"`
}

// DeliveryView is one delivery of a notification: its attempts so far.
type DeliveryView struct {
	ID        int       `json:"id"`
	API       string    `json:"api"` // "v2"
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
	return fmt.Sprintf("4200%s%016d", wechatpay.FormatV2Time(now)[:8], n)
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
