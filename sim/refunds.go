package sim

import (
	"bytes"
	"crypto/aes"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// WeChat's limits on the refunds of one trade.
const (
	maxRefundsPerTrade = 50
	maxRefundReason    = 80
)

// Refund statuses as WeChat's API v3 names them, and the v2 notification's
// refund_status for each.
var v2RefundStatus = map[string]string{
	string(payment.RefundSuccess):  "SUCCESS",
	string(payment.RefundAbnormal): "CHANGE",
	string(payment.RefundClosed):   "REFUNDCLOSE",
}

// v3 refund notification event types and summaries.
var v3RefundEvent = map[string][2]string{
	string(payment.RefundSuccess):  {"REFUND.SUCCESS", "退款成功"},
	string(payment.RefundAbnormal): {"REFUND.ABNORMAL", "退款异常"},
	string(payment.RefundClosed):   {"REFUND.CLOSED", "退款关闭"},
}

// Where a refund was asked for, in v2's refund_request_source words.
const (
	refundSourceAPI    = "API"
	refundSourcePortal = "VENDOR_PLATFORM"
)

// RefundOptions are an operator's switches for one out_refund_no, set
// before the refund is asked for (POST /sim/refunds/{out_refund_no}/options)
// or with a portal refund.
type RefundOptions struct {
	// Outcome after PROCESSING: SUCCESS (default), CLOSED or ABNORMAL.
	Outcome string `json:"outcome,omitempty"`
	// Then, after ABNORMAL (as long again as PROCESSING): SUCCESS
	// (default) or CLOSED.
	Then string `json:"then,omitempty"`
	// Processing overrides SIM_REFUND_PROCESSING (a Go duration, scaled by
	// SIM_TIME_SCALE like it).
	Processing string `json:"processing,omitempty"`
	// NotEnough: answer this many applies NOT_ENOUGH (the merchant's
	// balance is short) before executing the refund.
	NotEnough int `json:"not_enough,omitempty"`
	// Refuse: answer every apply with this final refusal
	// (USER_ACCOUNT_ABNORMAL, INVALID_REQUEST, NO_AUTH, PARAM_ERROR);
	// nothing is executed.
	Refuse string `json:"refuse,omitempty"`
	// SystemErrorAfterAccept: the apply that executes the refund answers
	// 500 SYSTEM_ERROR (the ambiguous case: refunded, but the caller cannot
	// know); later applies and queries show the refund.
	SystemErrorAfterAccept bool `json:"system_error_after_accept,omitempty"`
	// Drop: send no notification for this refund (POST
	// /sim/refunds/{out_refund_no}/notify can still send the last one).
	Drop bool `json:"drop,omitempty"`
	// Version of the notifications: v3 (default for API refunds) or v2
	// (always for portal refunds).
	Version string `json:"version,omitempty"`
}

var refundRefusals = map[string]struct {
	status int
	msg    string
}{
	"USER_ACCOUNT_ABNORMAL": {http.StatusForbidden, "退款请求失败，用户帐号注销"},
	"INVALID_REQUEST":       {http.StatusBadRequest, "请求参数符合参数格式，但不符合业务规则"},
	"NO_AUTH":               {http.StatusForbidden, "没有退款权限"},
	"PARAM_ERROR":           {http.StatusBadRequest, "参数错误"},
}

func (o *RefundOptions) normalize(portal bool) (time.Duration, error) {
	switch o.Outcome {
	case "":
		o.Outcome = string(payment.RefundSuccess)
	case string(payment.RefundSuccess), string(payment.RefundClosed), string(payment.RefundAbnormal):
	default:
		return 0, errors.New("outcome must be SUCCESS, CLOSED or ABNORMAL")
	}
	switch o.Then {
	case "":
		o.Then = string(payment.RefundSuccess)
	case string(payment.RefundSuccess), string(payment.RefundClosed):
	default:
		return 0, errors.New("then must be SUCCESS or CLOSED")
	}
	var d time.Duration = -1
	if o.Processing != "" {
		var err error
		if d, err = time.ParseDuration(o.Processing); err != nil || d < 0 {
			return 0, errors.New("processing must be a Go duration >= 0")
		}
	}
	if o.NotEnough < 0 || o.NotEnough > 1000 {
		return 0, errors.New("not_enough must be 0 to 1000")
	}
	if _, ok := refundRefusals[o.Refuse]; o.Refuse != "" && !ok {
		return 0, errors.New("refuse must be USER_ACCOUNT_ABNORMAL, INVALID_REQUEST, NO_AUTH or PARAM_ERROR")
	}
	switch {
	case portal:
		if o.Version != "" && o.Version != "v2" {
			return 0, errors.New("portal refunds are notified in v2 only")
		}
		o.Version = "v2"
	case o.Version == "":
		o.Version = "v3"
	case o.Version != "v2" && o.Version != "v3":
		return 0, errors.New(`version must be "v2" or "v3"`)
	}
	return d, nil
}

// refund is one refund as WeChat sees it. Its fields are guarded by the
// trades mutex.
type refund struct {
	outRefundNo   string
	outTradeNo    string
	transactionID string
	refundID      string
	amountFen     int64
	totalFen      int64
	reason        string
	notifyURL     string // the apply's notify_url; the configured one when empty
	source        string // API or VENDOR_PLATFORM
	status        string
	created       time.Time
	successTime   time.Time
	opts          RefundOptions
	processing    time.Duration // before scaling

	applies    int // apply calls under this number
	executions int // times WeChat executed it: 1, whatever happens
	queries    int
	dropped    int
	notice     *message
	deliveries []*delivery
}

// refundBook is the simulator's refunds. It shares the trades mutex, so a
// refund and its trade change together.
type refundBook struct {
	t        *trades
	byNo     map[string]*refund
	byTrade  map[string][]*refund
	options  map[string]RefundOptions // set before the refund exists
	optionsD map[string]time.Duration
}

func newRefundBook(t *trades) *refundBook {
	return &refundBook{t: t, byNo: map[string]*refund{}, byTrade: map[string][]*refund{},
		options: map[string]RefundOptions{}, optionsD: map[string]time.Duration{}}
}

// refundRequest is an apply (API) or a portal refund.
type refundRequest struct {
	OutTradeNo    string
	TransactionID string
	OutRefundNo   string
	Reason        string
	NotifyURL     string
	AmountFen     int64
	TotalFen      int64 // 0: not checked (portal)
	Source        string
}

// refundAnswer is what an apply answers.
type refundAnswer struct {
	status int    // 200, or an error status
	code   string // WeChat's error code when status is not 200
	msg    string
	view   refundFacts
	start  *refund // a refund executed by this call: its progression must start
}

// refundFacts is a copy of a refund taken under the lock.
type refundFacts struct {
	OutRefundNo, OutTradeNo, TransactionID, RefundID string
	AmountFen, TotalFen                              int64
	Status, Source                                   string
	Created, SuccessTime                             time.Time
}

func (r *refund) facts() refundFacts {
	return refundFacts{OutRefundNo: r.outRefundNo, OutTradeNo: r.outTradeNo, TransactionID: r.transactionID,
		RefundID: r.refundID, AmountFen: r.amountFen, TotalFen: r.totalFen, Status: r.status, Source: r.source,
		Created: r.created, SuccessTime: r.successTime}
}

func refundFail(status int, code, msg string) refundAnswer {
	return refundAnswer{status: status, code: code, msg: msg}
}

// apply executes a refund at most once per out_refund_no, as WeChat does:
// a repeat with the same parameters answers the refund as it is now.
func (b *refundBook) apply(req refundRequest, now time.Time, defaultProcessing time.Duration) refundAnswer {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if r, ok := b.byNo[req.OutRefundNo]; ok {
		r.applies++
		if r.outTradeNo != req.OutTradeNo || r.amountFen != req.AmountFen || (req.TotalFen != 0 && r.totalFen != req.TotalFen) {
			return refundFail(http.StatusBadRequest, "INVALID_REQUEST", "退款单号已存在，且与原退款单的参数不一致")
		}
		return refundAnswer{status: http.StatusOK, view: r.facts()}
	}
	opts, hasOpts := b.options[req.OutRefundNo]
	processing, ok := b.optionsD[req.OutRefundNo]
	if !ok || processing < 0 {
		processing = defaultProcessing
	}
	if !hasOpts {
		_, _ = opts.normalize(req.Source == refundSourcePortal)
	}
	if r := refundRefusals[opts.Refuse]; opts.Refuse != "" && req.Source == refundSourceAPI {
		return refundFail(r.status, opts.Refuse, r.msg)
	}
	if opts.NotEnough > 0 && req.Source == refundSourceAPI {
		opts.NotEnough--
		b.options[req.OutRefundNo] = opts
		return refundFail(http.StatusForbidden, "NOT_ENOUGH", "基本账户余额不足，请充值后重新发起")
	}

	if req.TransactionID != "" && req.OutTradeNo == "" {
		req.OutTradeNo = b.t.byTxn[req.TransactionID]
	}
	t, ok := b.t.byNo[req.OutTradeNo]
	if !ok || (t.state != payment.TradeSuccess && t.state != payment.TradeRefund) ||
		(req.TransactionID != "" && t.transactionID != req.TransactionID) {
		return refundFail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "订单号不存在，请检查订单号是否正确且是否已支付")
	}
	if req.TotalFen != 0 && req.TotalFen != t.amountFen {
		return refundFail(http.StatusBadRequest, "INVALID_REQUEST", "订单金额与原订单不一致")
	}
	var counted int64
	for _, r := range b.byTrade[t.outTradeNo] {
		if r.status != string(payment.RefundClosed) {
			counted += r.amountFen
		}
	}
	switch {
	case len(b.byTrade[t.outTradeNo]) >= maxRefundsPerTrade:
		return refundFail(http.StatusBadRequest, "INVALID_REQUEST", "部分退款次数超过限制（50次）")
	case counted+req.AmountFen > t.amountFen:
		return refundFail(http.StatusBadRequest, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
	}

	r := &refund{
		outRefundNo: req.OutRefundNo, outTradeNo: t.outTradeNo, transactionID: t.transactionID,
		refundID: newRefundID(now), amountFen: req.AmountFen, totalFen: t.amountFen, reason: req.Reason,
		notifyURL: req.NotifyURL, source: req.Source, status: string(payment.RefundProcessing), created: now,
		opts: opts, processing: processing, applies: 1, executions: 1,
	}
	b.byNo[r.outRefundNo] = r
	b.byTrade[t.outTradeNo] = append(b.byTrade[t.outTradeNo], r)
	delete(b.options, r.outRefundNo)
	delete(b.optionsD, r.outRefundNo)
	t.state = payment.TradeRefund // the order query now answers REFUND (转入退款)
	a := refundAnswer{status: http.StatusOK, view: r.facts(), start: r}
	if opts.SystemErrorAfterAccept && req.Source == refundSourceAPI {
		a.status, a.code, a.msg = http.StatusInternalServerError, "SYSTEM_ERROR", "系统超时，请不要更换商户退款单号，请使用相同参数再次调用API"
	}
	return a
}

// setOptions records an operator's switches for a refund not asked for yet.
func (b *refundBook) setOptions(no string, o RefundOptions, d time.Duration) error {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	if _, ok := b.byNo[no]; ok {
		return fmt.Errorf("%w: refund %s exists already", errBadRequest, no)
	}
	b.options[no], b.optionsD[no] = o, d
	return nil
}

// query returns a refund as the refund query answers it.
func (b *refundBook) query(no string) (refundFacts, bool) {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	r, ok := b.byNo[no]
	if !ok {
		return refundFacts{}, false
	}
	r.queries++
	return r.facts(), true
}

// advance moves a refund to status (and success_time for SUCCESS).
func (b *refundBook) advance(r *refund, status string, now time.Time) refundFacts {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	r.status = status
	if status == string(payment.RefundSuccess) {
		r.successTime = now
	}
	return r.facts()
}

// addDeliveries records msg as the refund's notification and creates one
// delivery of it (none when dropped); a nil msg resends the last one.
func (b *refundBook) addDelivery(no string, msg *message, drop bool) (*delivery, error) {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	r, ok := b.byNo[no]
	if !ok {
		return nil, errNoTrade
	}
	if msg == nil {
		if msg = r.notice; msg == nil {
			return nil, errNoNotice
		}
	}
	r.notice = msg
	if drop {
		r.dropped++
		return nil, nil
	}
	b.t.lastDelivery++
	d := &delivery{id: b.t.lastDelivery, outTradeNo: r.outTradeNo, msg: msg}
	r.deliveries = append(r.deliveries, d)
	return d, nil
}

// run is a refund's life after it was executed: PROCESSING for its time,
// then its outcome (and after ABNORMAL, as long again, its final status),
// each notified.
func (s *Server) runRefund(r *refund) {
	s.notifier.spawnFunc(func() {
		wait := time.Duration(float64(r.processing) * s.cfg.TimeScale)
		steps := []string{r.opts.Outcome}
		if r.opts.Outcome == string(payment.RefundAbnormal) {
			steps = append(steps, r.opts.Then)
		}
		for _, status := range steps {
			if !sleep(s.notifier.ctx, wait) {
				return
			}
			f := s.refunds.advance(r, status, s.now())
			s.notifyRefund(f, r.opts, r.notifyURL)
		}
	})
}

// notifyRefund renders and sends a refund notification in the refund's
// format.
func (s *Server) notifyRefund(f refundFacts, opts RefundOptions, notifyURL string) {
	log := s.log.With("out_refund_no", f.OutRefundNo, "out_trade_no", f.OutTradeNo, "refund_status", f.Status, "version", opts.Version)
	var (
		msg *message
		err error
	)
	if opts.Version == "v3" && s.v3 != nil {
		msg, err = s.v3RefundNotice(f)
		if msg != nil {
			msg.url = notifyURL
			if msg.url == "" {
				msg.url = s.cfg.NotifyURLV3
			}
		}
	} else {
		// v2 refund notifications go where the merchant portal says
		// (SIM_REFUND_NOTIFY_URL), as portal refunds' do.
		msg, err = s.v2RefundNotice(f)
		if msg != nil {
			msg.url = s.cfg.RefundNotifyURL
		}
	}
	if err != nil {
		log.Error("render refund notification", "error", err)
		return
	}
	d, err := s.refunds.addDelivery(f.OutRefundNo, msg, opts.Drop)
	if err != nil {
		log.Error("refund notification", "error", err)
		return
	}
	if d == nil {
		log.Info("refund notification dropped")
		return
	}
	log.Info("refund notification", "delivery", d.id, "notify_url", msg.url)
	s.notifier.spawn(d, nil)
}

// v3RefundResource is a v3 refund notification's decrypted resource.
type v3RefundResource struct {
	MchID               string         `json:"mchid"`
	OutTradeNo          string         `json:"out_trade_no"`
	TransactionID       string         `json:"transaction_id"`
	OutRefundNo         string         `json:"out_refund_no"`
	RefundID            string         `json:"refund_id"`
	RefundStatus        string         `json:"refund_status"`
	SuccessTime         string         `json:"success_time,omitempty"`
	UserReceivedAccount string         `json:"user_received_account"`
	Amount              v3RefundAmount `json:"amount"`
}

type v3RefundAmount struct {
	Total       int64 `json:"total"`
	Refund      int64 `json:"refund"`
	PayerTotal  int64 `json:"payer_total"`
	PayerRefund int64 `json:"payer_refund"`
}

const userReceivedAccount = "支付用户零钱"

// v3RefundNotice renders a REFUND.* notification: the envelope of payment
// notifications with original_type and associated_data "refund", signed
// afresh at each attempt.
func (s *Server) v3RefundNotice(f refundFacts) (*message, error) {
	ev, ok := v3RefundEvent[f.Status]
	if !ok {
		return nil, fmt.Errorf("no notification for status %s", f.Status)
	}
	res := v3RefundResource{MchID: s.cfg.MchID, OutTradeNo: f.OutTradeNo, TransactionID: f.TransactionID,
		OutRefundNo: f.OutRefundNo, RefundID: f.RefundID, RefundStatus: f.Status, UserReceivedAccount: userReceivedAccount,
		Amount: v3RefundAmount{Total: f.TotalFen, Refund: f.AmountFen, PayerTotal: f.TotalFen, PayerRefund: f.AmountFen}}
	if f.Status == string(payment.RefundSuccess) {
		res.SuccessTime = f.SuccessTime.In(beijing).Format(time.RFC3339)
	}
	plain, err := marshalJSON(res)
	if err != nil {
		return nil, err
	}
	env := v3Envelope{ID: newUUID(), CreateTime: s.now().In(beijing).Format(time.RFC3339), ResourceType: "encrypt-resource",
		EventType: ev[0], Summary: ev[1],
		Resource: v3Resource{OriginalType: "refund", Algorithm: v3Algorithm, AssociatedData: "refund", Nonce: randomAlnum(12)}}
	if env.Resource.Ciphertext, err = encryptResource(s.v3.apiV3Key, env.Resource.Nonce, "refund", plain); err != nil {
		return nil, fmt.Errorf("encrypt resource: %w", err)
	}
	body, err := marshalJSON(env)
	if err != nil {
		return nil, err
	}
	ident := s.v3.pick("")
	return &message{
		api:    "v3",
		header: http.Header{"Content-Type": {"application/json"}},
		sign: func() (http.Header, error) {
			h, err := v3Signed(ident, s.now(), body)
			if err != nil {
				return nil, err
			}
			h.Set("Wechatpay-Signature-Type", v3AuthScheme)
			return h, nil
		},
		body:     body,
		accepted: v3Accepted,
	}, nil
}

// v2RefundNotice renders a v2 refund notification: return_code, appid,
// mch_id, nonce_str and req_info, and no sign; req_info is base64 of the
// <root> XML encrypted with AES-256-ECB (PKCS#7) under the lowercase hex
// MD5 of the API v2 key.
func (s *Server) v2RefundNotice(f refundFacts) (*message, error) {
	st, ok := v2RefundStatus[f.Status]
	if !ok {
		return nil, fmt.Errorf("no notification for status %s", f.Status)
	}
	inner := map[string]string{
		"out_refund_no":         f.OutRefundNo,
		"out_trade_no":          f.OutTradeNo,
		"refund_account":        "REFUND_SOURCE_RECHARGE_FUNDS",
		"refund_fee":            strconv.FormatInt(f.AmountFen, 10),
		"refund_id":             f.RefundID,
		"refund_recv_accout":    userReceivedAccount, // sic, as WeChat spells it
		"refund_request_source": f.Source,
		"refund_status":         st,
		"settlement_refund_fee": strconv.FormatInt(f.AmountFen, 10),
		"settlement_total_fee":  strconv.FormatInt(f.TotalFen, 10),
		"total_fee":             strconv.FormatInt(f.TotalFen, 10),
		"transaction_id":        f.TransactionID,
	}
	if f.Status == string(payment.RefundSuccess) {
		inner["success_time"] = f.SuccessTime.In(beijing).Format("2006-01-02 15:04:05")
	}
	reqInfo, err := encryptReqInfo(s.cfg.APIKey, rootXML(inner))
	if err != nil {
		return nil, err
	}
	outer := map[string]string{"return_code": "SUCCESS", "appid": s.cfg.AppID, "mch_id": s.cfg.MchID,
		"nonce_str": newNonce(), "req_info": reqInfo}
	return &message{
		api:      "v2",
		header:   http.Header{"Content-Type": {"text/xml"}},
		body:     apiv2.EncodeXML(outer),
		accepted: v2Accepted,
	}, nil
}

// rootXML writes m as <root> with CDATA values, keys sorted, as WeChat's
// req_info holds it.
func rootXML(m map[string]string) []byte {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("<root>")
	for _, k := range keys {
		fmt.Fprintf(&b, "<%s><![CDATA[%s]]></%s>", k, m[k], k)
	}
	b.WriteString("</root>")
	return b.Bytes()
}

// encryptReqInfo encrypts plain as WeChat encrypts req_info.
func encryptReqInfo(apiKey string, plain []byte) (string, error) {
	sum := md5.Sum([]byte(apiKey))
	block, err := aes.NewCipher([]byte(hex.EncodeToString(sum[:]))) // 32 ASCII bytes: AES-256
	if err != nil {
		return "", err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := append(append([]byte{}, plain...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	for i := 0; i < len(buf); i += aes.BlockSize {
		block.Encrypt(buf[i:i+aes.BlockSize], buf[i:i+aes.BlockSize])
	}
	return base64.StdEncoding.EncodeToString(buf), nil
}

// newRefundID returns a 29-digit WeChat-like refund_id.
func newRefundID(now time.Time) string {
	n, _ := rand.Int(rand.Reader, new(big.Int).Exp(big.NewInt(10), big.NewInt(17), nil))
	return fmt.Sprintf("5030%s%017d", apiv2.FormatTime(now)[:8], n)
}

// v3Refund is WeChat's refund object, as the apply and the query answer it.
type v3Refund struct {
	RefundID            string        `json:"refund_id"`
	OutRefundNo         string        `json:"out_refund_no"`
	TransactionID       string        `json:"transaction_id"`
	OutTradeNo          string        `json:"out_trade_no"`
	Channel             string        `json:"channel"`
	UserReceivedAccount string        `json:"user_received_account"`
	SuccessTime         string        `json:"success_time,omitempty"`
	CreateTime          string        `json:"create_time"`
	Status              string        `json:"status"`
	FundsAccount        string        `json:"funds_account"`
	Amount              v3RefundTotal `json:"amount"`
	PromotionDetail     []any         `json:"promotion_detail"`
}

type v3RefundTotal struct {
	Total            int64  `json:"total"`
	Refund           int64  `json:"refund"`
	From             []any  `json:"from"`
	PayerTotal       int64  `json:"payer_total"`
	PayerRefund      int64  `json:"payer_refund"`
	SettlementRefund int64  `json:"settlement_refund"`
	SettlementTotal  int64  `json:"settlement_total"`
	DiscountRefund   int64  `json:"discount_refund"`
	Currency         string `json:"currency"`
}

func v3RefundOf(f refundFacts) v3Refund {
	r := v3Refund{RefundID: f.RefundID, OutRefundNo: f.OutRefundNo, TransactionID: f.TransactionID, OutTradeNo: f.OutTradeNo,
		Channel: "ORIGINAL", UserReceivedAccount: userReceivedAccount, CreateTime: f.Created.In(beijing).Format(time.RFC3339),
		Status: f.Status, FundsAccount: "AVAILABLE", PromotionDetail: []any{},
		Amount: v3RefundTotal{Total: f.TotalFen, Refund: f.AmountFen, From: []any{}, PayerTotal: f.TotalFen, PayerRefund: f.AmountFen,
			SettlementRefund: f.AmountFen, SettlementTotal: f.TotalFen, Currency: payment.DefaultCurrency}}
	if f.Status == string(payment.RefundSuccess) {
		r.SuccessTime = f.SuccessTime.In(beijing).Format(time.RFC3339)
	}
	return r
}

// v3RefundApply is the body of POST /v3/refund/domestic/refunds.
type v3RefundApply struct {
	TransactionID string `json:"transaction_id"`
	OutTradeNo    string `json:"out_trade_no"`
	OutRefundNo   string `json:"out_refund_no"`
	Reason        string `json:"reason"`
	NotifyURL     string `json:"notify_url"`
	Amount        *struct {
		Refund   *int64 `json:"refund"`
		Total    *int64 `json:"total"`
		Currency string `json:"currency"`
	} `json:"amount"`
}

// handleV3Refund serves POST /v3/refund/domestic/refunds.
func (s *Server) handleV3Refund(_ *http.Request, body []byte) v3Answer {
	var req v3RefundApply
	if err := json.Unmarshal(body, &req); err != nil {
		return v3ParamError("body is not a JSON refund request: " + clip(err.Error()))
	}
	switch {
	case req.OutTradeNo == "" && req.TransactionID == "":
		return v3ParamError("out_trade_no or transaction_id is required")
	case req.OutTradeNo != "" && !payment.ValidOutTradeNo(req.OutTradeNo):
		return v3ParamError("out_trade_no must be 6 to 32 of A-Z a-z 0-9 _ - | *")
	case !payment.ValidOutRefundNo(req.OutRefundNo):
		return v3ParamError("out_refund_no must be 1 to 64 of 0-9 A-Z a-z _ - | * @")
	case !utf8.ValidString(req.Reason) || utf8.RuneCountInString(req.Reason) > maxRefundReason:
		return v3ParamError("reason must be at most 80 characters")
	case req.NotifyURL != "" && !notifyURLOK(req.NotifyURL):
		return v3ParamError("notify_url must be an http(s) URL without a query")
	case req.Amount == nil || req.Amount.Refund == nil || *req.Amount.Refund <= 0 || req.Amount.Total == nil || *req.Amount.Total <= 0:
		return v3ParamError("amount.refund and amount.total must be integers > 0 (fen)")
	case req.Amount.Currency != payment.DefaultCurrency:
		return v3ParamError("amount.currency must be CNY")
	case *req.Amount.Refund > *req.Amount.Total:
		return v3ParamError("amount.refund must not exceed amount.total")
	}
	a := s.refunds.apply(refundRequest{OutTradeNo: req.OutTradeNo, TransactionID: req.TransactionID, OutRefundNo: req.OutRefundNo,
		Reason: req.Reason, NotifyURL: req.NotifyURL, AmountFen: *req.Amount.Refund, TotalFen: *req.Amount.Total, Source: refundSourceAPI},
		s.now(), s.cfg.RefundProcessing)
	s.log.Info("refund apply", "out_refund_no", req.OutRefundNo, "out_trade_no", req.OutTradeNo, "amount_fen", *req.Amount.Refund,
		"http_status", a.status, "code", a.code, "executed", a.start != nil)
	if a.start != nil {
		s.runRefund(a.start)
	}
	if a.status != http.StatusOK {
		return v3Fail(a.status, a.code, a.msg)
	}
	return v3Answer{http.StatusOK, v3RefundOf(a.view)}
}

// handleV3RefundQuery serves GET /v3/refund/domestic/refunds/{out_refund_no}.
func (s *Server) handleV3RefundQuery(r *http.Request, _ []byte) v3Answer {
	f, ok := s.refunds.query(r.PathValue("out_refund_no"))
	if !ok {
		return v3Fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "退款单不存在")
	}
	return v3Answer{http.StatusOK, v3RefundOf(f)}
}

// PortalRefundRequest is the body of POST /sim/refunds: a refund made in
// the merchant portal, which this service did not ask for.
type PortalRefundRequest struct {
	OutTradeNo  string `json:"out_trade_no"`
	AmountFen   int64  `json:"amount_fen"`
	OutRefundNo string `json:"out_refund_no"` // generated when empty
	RefundOptions
}

// handlePortalRefund serves POST /sim/refunds.
func (s *Server) handlePortalRefund(w http.ResponseWriter, r *http.Request) {
	var req PortalRefundRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.OutRefundNo == "" {
		req.OutRefundNo = "P" + apiv2.FormatTime(s.now()) + randomHex(6)
	}
	if !payment.ValidOutRefundNo(req.OutRefundNo) || !payment.ValidOutTradeNo(req.OutTradeNo) || req.AmountFen <= 0 {
		writeJSONError(w, http.StatusBadRequest, "out_trade_no, amount_fen > 0 and a valid out_refund_no are required")
		return
	}
	opts := req.RefundOptions
	d, err := opts.normalize(true)
	if err == nil && (opts.NotEnough != 0 || opts.Refuse != "" || opts.SystemErrorAfterAccept) {
		err = errors.New("not_enough, refuse and system_error_after_accept apply to API refunds only")
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.refunds.setOptions(req.OutRefundNo, opts, d); err != nil {
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	}
	a := s.refunds.apply(refundRequest{OutTradeNo: req.OutTradeNo, OutRefundNo: req.OutRefundNo, AmountFen: req.AmountFen,
		Source: refundSourcePortal}, s.now(), s.cfg.RefundProcessing)
	if a.start == nil {
		s.refunds.clearOptions(req.OutRefundNo)
		writeJSONError(w, http.StatusConflict, a.code+": "+a.msg)
		return
	}
	s.log.Info("portal refund", "out_refund_no", req.OutRefundNo, "out_trade_no", req.OutTradeNo, "amount_fen", req.AmountFen)
	s.runRefund(a.start)
	v, _ := s.refunds.view(req.OutRefundNo)
	writeJSON(w, http.StatusCreated, v)
}

func (b *refundBook) clearOptions(no string) {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	delete(b.options, no)
	delete(b.optionsD, no)
}

// handleRefundOptions serves POST /sim/refunds/{out_refund_no}/options.
func (s *Server) handleRefundOptions(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("out_refund_no")
	var opts RefundOptions
	if err := decodeJSON(w, r, &opts); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	d, err := opts.normalize(false)
	if err == nil && !payment.ValidOutRefundNo(no) {
		err = errors.New("out_refund_no must be 1 to 64 of 0-9 A-Z a-z _ - | * @")
	}
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := s.refunds.setOptions(no, opts, d); err != nil {
		writeJSONError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, opts)
}

// handleRefundRenotify serves POST /sim/refunds/{out_refund_no}/notify: a
// new delivery of the refund's last notification (also a dropped one).
func (s *Server) handleRefundRenotify(w http.ResponseWriter, r *http.Request) {
	no := r.PathValue("out_refund_no")
	d, err := s.refunds.addDelivery(no, nil, false)
	switch {
	case errors.Is(err, errNoTrade):
		writeJSONError(w, http.StatusNotFound, "unknown refund")
		return
	case errors.Is(err, errNoNotice):
		writeJSONError(w, http.StatusConflict, "refund has no notification yet")
		return
	case err != nil:
		writeJSONError(w, http.StatusInternalServerError, "internal error")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"out_refund_no": no, "delivery": d.id})
	s.notifier.spawn(d, nil)
}

// RefundView is a refund as GET /sim/refunds/{out_refund_no} shows it.
type RefundView struct {
	OutRefundNo   string         `json:"out_refund_no"`
	OutTradeNo    string         `json:"out_trade_no"`
	TransactionID string         `json:"transaction_id"`
	RefundID      string         `json:"refund_id"`
	AmountFen     int64          `json:"amount_fen"`
	TotalFen      int64          `json:"total_fen"`
	Status        string         `json:"status"`
	Source        string         `json:"source"` // API or VENDOR_PLATFORM
	Reason        string         `json:"reason,omitempty"`
	NotifyURL     string         `json:"notify_url,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
	SuccessTime   *time.Time     `json:"success_time"`
	Applies       int            `json:"applies"`    // apply calls under this out_refund_no
	Executions    int            `json:"executions"` // times WeChat executed it: 1
	Queries       int            `json:"queries"`
	Dropped       int            `json:"dropped"`
	Options       RefundOptions  `json:"options"`
	Deliveries    []DeliveryView `json:"deliveries"`
}

func (b *refundBook) view(no string) (RefundView, bool) {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	r, ok := b.byNo[no]
	if !ok {
		return RefundView{}, false
	}
	v := RefundView{OutRefundNo: r.outRefundNo, OutTradeNo: r.outTradeNo, TransactionID: r.transactionID, RefundID: r.refundID,
		AmountFen: r.amountFen, TotalFen: r.totalFen, Status: r.status, Source: r.source, Reason: r.reason, NotifyURL: r.notifyURL,
		CreatedAt: r.created, SuccessTime: timePtr(r.successTime), Applies: r.applies, Executions: r.executions,
		Queries: r.queries, Dropped: r.dropped, Options: r.opts, Deliveries: make([]DeliveryView, 0, len(r.deliveries))}
	for _, d := range r.deliveries {
		v.Deliveries = append(v.Deliveries, DeliveryView{ID: d.id, API: d.msg.api, Attempts: append([]Attempt{}, d.attempts...),
			Done: d.done, Delivered: d.delivered})
	}
	return v, true
}

// RefundSummary is GET /sim/refunds: WeChat's side of every refund, so that
// tests can check exactly-once against it.
type RefundSummary struct {
	Refunds    int                     `json:"refunds"`
	Executions map[string]int          `json:"executions"` // out_refund_no → times executed (1 each)
	Applies    map[string]int          `json:"applies"`    // out_refund_no → apply calls
	Trades     map[string]TradeRefunds `json:"trades"`     // by out_trade_no
}

// TradeRefunds is one trade's refunds at WeChat.
type TradeRefunds struct {
	TotalFen     int64 `json:"total_fen"`
	RefundedFen  int64 `json:"refunded_fen"`  // SUCCESS refunds
	RequestedFen int64 `json:"requested_fen"` // refunds not CLOSED: never more than total_fen
	Refunds      int   `json:"refunds"`
}

func (b *refundBook) summary() RefundSummary {
	b.t.mu.Lock()
	defer b.t.mu.Unlock()
	sum := RefundSummary{Refunds: len(b.byNo), Executions: map[string]int{}, Applies: map[string]int{}, Trades: map[string]TradeRefunds{}}
	for no, r := range b.byNo {
		sum.Executions[no], sum.Applies[no] = r.executions, r.applies
	}
	for no, rs := range b.byTrade {
		tr := TradeRefunds{Refunds: len(rs)}
		if t := b.t.byNo[no]; t != nil {
			tr.TotalFen = t.amountFen
		}
		for _, r := range rs {
			if r.status == string(payment.RefundSuccess) {
				tr.RefundedFen += r.amountFen
			}
			if r.status != string(payment.RefundClosed) {
				tr.RequestedFen += r.amountFen
			}
		}
		sum.Trades[no] = tr
	}
	return sum
}

// handleRefund serves GET /sim/refunds/{out_refund_no}.
func (s *Server) handleRefund(w http.ResponseWriter, r *http.Request) {
	v, ok := s.refunds.view(r.PathValue("out_refund_no"))
	if !ok {
		writeJSONError(w, http.StatusNotFound, "unknown refund")
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// handleRefundSummary serves GET /sim/refunds.
func (s *Server) handleRefundSummary(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.refunds.summary())
}

// registerRefunds adds the refund routes to mux.
func (s *Server) registerRefunds(mux *http.ServeMux) {
	mux.HandleFunc("POST /v3/refund/domestic/refunds", s.call("v3.refund", s.v3Handler("refund", s.handleV3Refund)))
	mux.HandleFunc("GET /v3/refund/domestic/refunds/{out_refund_no}", s.call("v3.refund_query", s.delayed(s.v3Handler("refund query", s.handleV3RefundQuery))))
	mux.HandleFunc("POST /sim/refunds", s.handlePortalRefund)
	mux.HandleFunc("GET /sim/refunds", s.handleRefundSummary)
	mux.HandleFunc("GET /sim/refunds/{out_refund_no}", s.handleRefund)
	mux.HandleFunc("POST /sim/refunds/{out_refund_no}/options", s.handleRefundOptions)
	mux.HandleFunc("POST /sim/refunds/{out_refund_no}/notify", s.handleRefundRenotify)
}
