package sim

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/payflow/payflow/payment"
)

// The trade bill (交易账单, bill_type ALL) as WeChat serves it, following
// pay.weixin.qq.com/docs/merchant/products/bill-download/format-trade.html:
// a header of Chinese column names, one row per payment or refund whose
// every field starts with a back-tick, then the summary header and one
// summary row. Amounts are yuan with two decimals, the fee with five; a
// refund row carries the order's ids with the refund's own and zero
// payment amounts; the file starts with a UTF-8 byte order mark and ends
// lines with CRLF, as downloaded bills do.
const (
	billHeader = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类," +
		"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包," +
		"手续费,费率,订单金额,申请退款金额,费率备注"
	billSummaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
	billBOM           = "\uFEFF"
	billEOL           = "\r\n"
	billFeeRate       = "0.60%"
	billLinkTTL       = 5 * time.Minute // download links last minutes
)

// BillSwitches are the operator's switches for one day's bill, set with
// POST /sim/bills/{date} (each call replaces the day's switches).
type BillSwitches struct {
	Omit        []string         `json:"omit"`         // trades (out_trade_no) the bill leaves out
	Amounts     map[string]int64 `json:"amounts"`      // out_trade_no -> the amount in fen the bill shows instead
	Extra       []BillTrade      `json:"extra"`        // payments WeChat has that the merchant never created
	Refunds     []BillRefund     `json:"refunds"`      // refund rows (a refund made in the merchant portal, say)
	WrongHash   bool             `json:"wrong_hash"`   // tradebill answers a hash_value the file does not have
	Creating    int              `json:"creating"`     // the next N bill requests answer STATEMENT_CREATING (v2 "Bill Creating")
	ExpireLinks int              `json:"expire_links"` // the next N downloads refuse the link as expired
	Empty       bool             `json:"empty"`        // serve a bill (headers, zero summary) even for a day without trades
	// SyntheticRows, when set, makes the day's bill that many generated
	// payment rows (SyntheticTrade) instead of the sim's trades: for
	// benchmarks. The file is written to disk as it is generated, never
	// held in memory, and served from there.
	SyntheticRows   int    `json:"synthetic_rows"`
	SyntheticPrefix string `json:"synthetic_prefix"` // out_trade_no prefix of the generated rows (default SYN)
}

// BillTrade is a payment row the operator adds.
type BillTrade struct {
	OutTradeNo    string `json:"out_trade_no"`
	AmountFen     int64  `json:"amount_fen"`
	TransactionID string `json:"transaction_id"` // generated when empty
}

// BillRefund is a refund row the operator adds.
type BillRefund struct {
	OutTradeNo  string `json:"out_trade_no"`
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	Status      string `json:"status"`    // SUCCESS (default), PROCESSING, REFUNDCLOSE or CHANGE
	RefundID    string `json:"refund_id"` // generated when empty
}

// BillView answers the bill operator endpoints.
type BillView struct {
	Date     string       `json:"date"`
	Switches BillSwitches `json:"switches"`
	Rows     int          `json:"rows"` // detail rows the bill has now (trades, switches applied)
}

// billBook is the sandbox's bills: switches by day and files handed out.
type billBook struct {
	mu       sync.Mutex
	dir      string // synthetic files; made on first use, removed on close
	switches map[string]*BillSwitches
	links    map[string]*billFile // by download token
	made     map[string]*billFile // synthetic files by their parameters
}

// billFile is one bill as served: in memory (small) or on disk (synthetic).
type billFile struct {
	date    string
	gzip    bool
	data    []byte
	path    string
	size    int64
	sha1    string // of the uncompressed file
	expires time.Time
}

func newBillBook() *billBook {
	return &billBook{switches: map[string]*BillSwitches{}, links: map[string]*billFile{}, made: map[string]*billFile{}}
}

func (b *billBook) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
		b.dir = ""
	}
}

// billDay parses a bill date in layout and returns the Beijing day's start.
func billDay(s, layout string) (time.Time, bool) {
	t, err := time.ParseInLocation(layout, s, beijing)
	return t, err == nil && t.Format(layout) == s
}

// takeCreating counts down the STATEMENT_CREATING switch.
func (b *billBook) takeCreating(date string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sw := b.switches[date]; sw != nil && sw.Creating > 0 {
		sw.Creating--
		return true
	}
	return false
}

func (b *billBook) switchesOf(date string) BillSwitches {
	b.mu.Lock()
	defer b.mu.Unlock()
	if sw := b.switches[date]; sw != nil {
		return *sw
	}
	return BillSwitches{}
}

// billRow is one detail row's values.
type billRow struct {
	at            time.Time
	appID, openID string
	transactionID string
	outTradeNo    string
	tradeType     string
	refund        bool
	amountFen     int64 // the order's amount (payment) or the refund's (refund)
	refundID      string
	outRefundNo   string
	refundStatus  string
	body, attach  string
}

// rowsOf lists the day's detail rows: the sim's paid trades of that
// Beijing day (by success time) with the switches applied and its refunds
// (by acceptance time), then the operator's extra payments and refunds.
func (s *Server) rowsOf(day time.Time, sw BillSwitches) []billRow {
	end := day.AddDate(0, 0, 1)
	omit := map[string]bool{}
	for _, no := range sw.Omit {
		omit[no] = true
	}
	var rows []billRow
	txnOf := map[string]string{}
	s.trades.mu.Lock()
	for _, t := range s.trades.byNo {
		txnOf[t.outTradeNo] = t.transactionID
		if t.transactionID == "" || (t.state != payment.TradeSuccess && t.state != payment.TradeRefund) ||
			t.timeEnd.Before(day) || !t.timeEnd.Before(end) || omit[t.outTradeNo] {
			continue
		}
		r := billRow{at: t.timeEnd, appID: s.cfg.AppID, openID: t.openID, transactionID: t.transactionID, outTradeNo: t.outTradeNo,
			tradeType: t.tradeType, amountFen: t.amountFen, body: t.description, attach: t.attach}
		if v, ok := sw.Amounts[t.outTradeNo]; ok {
			r.amountFen = v
		}
		rows = append(rows, r)
	}
	// Refunds are dated by WeChat's acceptance of them; the bill's status is
	// a snapshot in its own words (REFUNDCLOSE, CHANGE for CLOSED, ABNORMAL).
	for _, f := range s.refunds.byNo {
		status := map[string]string{"SUCCESS": "SUCCESS", "PROCESSING": "PROCESSING", "CLOSED": "REFUNDCLOSE", "ABNORMAL": "CHANGE"}[f.status]
		if status == "" || f.created.Before(day) || !f.created.Before(end) {
			continue
		}
		r := billRow{at: f.created, appID: s.cfg.AppID, transactionID: f.transactionID, outTradeNo: f.outTradeNo, refund: true,
			amountFen: f.amountFen, refundID: f.refundID, outRefundNo: f.outRefundNo, refundStatus: status}
		if t := s.trades.byNo[f.outTradeNo]; t != nil {
			r.openID, r.tradeType, r.body, r.attach = t.openID, t.tradeType, t.description, t.attach
		}
		rows = append(rows, r)
	}
	s.trades.mu.Unlock()
	slices.SortFunc(rows, func(a, b billRow) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.outTradeNo, b.outTradeNo)
	})
	for i, e := range sw.Extra {
		txn := e.TransactionID
		if txn == "" {
			txn = syntheticTxn(day, 900_000_000+i)
		}
		rows = append(rows, billRow{at: day.Add(12 * time.Hour), appID: s.cfg.AppID, openID: "oSandboxStranger000000000000",
			transactionID: txn, outTradeNo: e.OutTradeNo, amountFen: e.AmountFen, body: "sandbox"})
	}
	for i, f := range sw.Refunds {
		txn := txnOf[f.OutTradeNo]
		if txn == "" {
			txn = syntheticTxn(day, 950_000_000+i)
		}
		id := f.RefundID
		if id == "" {
			id = fmt.Sprintf("503000%s%014d", day.Format("20060102"), i+1)
		}
		status := f.Status
		if status == "" {
			status = "SUCCESS"
		}
		rows = append(rows, billRow{at: day.Add(20 * time.Hour), appID: s.cfg.AppID, openID: "oSandboxRefund00000000000000",
			transactionID: txn, outTradeNo: f.OutTradeNo, refund: true, amountFen: f.AmountFen, refundID: id,
			outRefundNo: f.OutRefundNo, refundStatus: status, body: "sandbox"})
	}
	return rows
}

// billWriter writes a bill as WeChat does, summing as it goes.
type billWriter struct {
	w                                    *bufio.Writer
	mchID                                string
	count                                int64
	settlement, refunds, orders, applied int64
	fee                                  int64 // fen
	buf                                  []byte
}

func newBillWriter(w io.Writer, mchID string) *billWriter {
	bw := &billWriter{w: bufio.NewWriterSize(w, 64<<10), mchID: mchID}
	bw.w.WriteString(billBOM + billHeader + billEOL)
	return bw
}

// yuan appends fen as yuan with two decimals.
func appendYuan(b []byte, fen int64) []byte {
	if fen < 0 {
		b = append(b, '-')
		fen = -fen
	}
	b = strconv.AppendInt(b, fen/100, 10)
	b = append(b, '.', byte('0'+fen%100/10), byte('0'+fen%10))
	return b
}

// feeOf is WeChat's fee at 0.6%, rounded to the fen.
func feeOf(fen int64) int64 { return (fen*6 + 500) / 1000 }

// clean keeps a text field on one line and off the field separator.
func clean(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ", "`", "'").Replace(s)
}

func (bw *billWriter) row(r billRow) {
	b := bw.buf[:0]
	field := func(s string) { b = append(b, ",`"...); b = append(b, s...) }
	amount := func(fen int64) { b = append(b, ",`"...); b = appendYuan(b, fen) }
	fee := func(fen int64) { b = append(b, ",`"...); b = appendYuan(b, fen); b = append(b, "000"...) }
	tradeType := r.tradeType
	if tradeType == "" {
		tradeType = "NATIVE"
	}
	b = append(b, '`')
	b = r.at.In(beijing).AppendFormat(b, "2006-01-02 15:04:05")
	field(r.appID)
	field(bw.mchID)
	field("0")
	field("")
	field(r.transactionID)
	field(r.outTradeNo)
	field(r.openID)
	field(tradeType)
	if r.refund {
		f := feeOf(r.amountFen)
		field("REFUND")
		field("OTHERS")
		field("CNY")
		amount(0) // 应结订单金额
		amount(0) // 代金券金额
		field(r.refundID)
		field(r.outRefundNo)
		amount(r.amountFen) // 退款金额
		amount(0)           // 充值券退款金额
		field("ORIGINAL")
		field(r.refundStatus)
		field(clean(r.body))
		field(clean(r.attach))
		fee(-f)
		field(billFeeRate)
		amount(0)           // 订单金额
		amount(r.amountFen) // 申请退款金额
		bw.refunds += r.amountFen
		bw.applied += r.amountFen
		bw.fee -= f
	} else {
		f := feeOf(r.amountFen)
		field("SUCCESS")
		field("OTHERS")
		field("CNY")
		amount(r.amountFen) // 应结订单金额
		amount(0)           // 代金券金额
		field("0")
		field("0")
		amount(0)
		amount(0)
		field("")
		field("")
		field(clean(r.body))
		field(clean(r.attach))
		fee(f)
		field(billFeeRate)
		amount(r.amountFen) // 订单金额
		amount(0)           // 申请退款金额
		bw.settlement += r.amountFen
		bw.orders += r.amountFen
		bw.fee += f
	}
	field("") // 费率备注
	b = append(b, billEOL...)
	bw.buf = b
	bw.count++
	_, _ = bw.w.Write(b)
}

func (bw *billWriter) finish() error {
	b := bw.buf[:0]
	b = append(b, billSummaryHeader+billEOL...)
	b = append(b, '`')
	b = strconv.AppendInt(b, bw.count, 10)
	for _, v := range []int64{bw.settlement, bw.refunds, 0} {
		b = append(b, ",`"...)
		b = appendYuan(b, v)
	}
	b = append(b, ",`"...)
	b = appendYuan(b, bw.fee)
	b = append(b, "000"...)
	for _, v := range []int64{bw.orders, bw.applied} {
		b = append(b, ",`"...)
		b = appendYuan(b, v)
	}
	b = append(b, billEOL...)
	_, _ = bw.w.Write(b)
	return bw.w.Flush()
}

// makeBill renders rows into a file (gzip unless plain) with its SHA-1.
func (s *Server) makeBill(date string, rows []billRow, gz bool) (*billFile, error) {
	var out bytes.Buffer
	h := sha1.New()
	var zw *gzip.Writer
	var w io.Writer = &out
	if gz {
		zw = gzip.NewWriter(&out)
		zw.Name = s.cfg.MchID + "All" + date + ".csv"
		w = zw
	}
	bw := newBillWriter(io.MultiWriter(w, h), s.cfg.MchID)
	for _, r := range rows {
		bw.row(r)
	}
	if err := bw.finish(); err != nil {
		return nil, err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, err
		}
	}
	return &billFile{date: date, gzip: gz, data: out.Bytes(), size: int64(out.Len()), sha1: hex.EncodeToString(h.Sum(nil))}, nil
}

// SyntheticTrade is row i of n of a synthetic bill of the day starting at
// dayStart: what POST /sim/bills/{date} with synthetic_rows serves, and
// what a benchmark loads as our orders to match it.
func SyntheticTrade(prefix string, dayStart time.Time, i, n int) (outTradeNo, transactionID string, amountFen int64, at time.Time) {
	if prefix == "" {
		prefix = "SYN"
	}
	step := 86400 * int64(time.Second) / int64(max(n, 1))
	return fmt.Sprintf("%s%010d", prefix, i), syntheticTxn(dayStart, i), 100 + int64(i%9901), dayStart.Add(time.Duration(int64(i) * step))
}

func syntheticTxn(day time.Time, i int) string {
	return fmt.Sprintf("4200000000%s%010d", day.Format("20060102"), i)
}

// syntheticBill writes (once per parameters) a generated bill to disk,
// streaming: rows are formatted, hashed and compressed one at a time.
func (s *Server) syntheticBill(date string, day time.Time, sw BillSwitches) (*billFile, error) {
	key := fmt.Sprintf("%s/%d/%s", date, sw.SyntheticRows, sw.SyntheticPrefix)
	b := s.bills
	b.mu.Lock()
	defer b.mu.Unlock() // one generation at a time; a second asker waits for the first
	if f := b.made[key]; f != nil {
		return f, nil
	}
	if b.dir == "" {
		dir, err := os.MkdirTemp("", "wechatpay-sim-bills-")
		if err != nil {
			return nil, err
		}
		b.dir = dir
	}
	path := filepath.Join(b.dir, fmt.Sprintf("%s-%d-%d.csv.gz", date, sw.SyntheticRows, len(b.made)))
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	zw, err := gzip.NewWriterLevel(file, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	zw.Name = s.cfg.MchID + "All" + date + ".csv"
	var h hash.Hash = sha1.New()
	bw := newBillWriter(io.MultiWriter(zw, h), s.cfg.MchID)
	n := sw.SyntheticRows
	for i := range n {
		no, txn, fen, at := SyntheticTrade(sw.SyntheticPrefix, day, i, n)
		bw.row(billRow{at: at, appID: s.cfg.AppID, openID: "oSynthetic000000000000000000", transactionID: txn, outTradeNo: no,
			amountFen: fen, body: "synthetic"})
	}
	if err := bw.finish(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	f := &billFile{date: date, gzip: true, path: path, size: st.Size(), sha1: hex.EncodeToString(h.Sum(nil))}
	b.made[key] = f
	s.log.Info("synthetic bill written", "date", date, "rows", n, "bytes", f.size)
	return f, nil
}

// billFor builds the day's bill, or says there is none (no trade that day).
func (s *Server) billFor(date string, day time.Time, gz bool) (*billFile, error) {
	sw := s.bills.switchesOf(date)
	if sw.SyntheticRows > 0 {
		return s.syntheticBill(date, day, sw)
	}
	rows := s.rowsOf(day, sw)
	if len(rows) == 0 && !sw.Empty {
		return nil, errNoBill
	}
	return s.makeBill(date, rows, gz)
}

var errNoBill = errors.New("no bill")

// serve writes a bill file as the download's answer: no Wechatpay
// signature headers, as WeChat sends bills.
func (f *billFile) serve(w http.ResponseWriter) {
	if f.gzip {
		w.Header().Set("Content-Type", "application/x-gzip")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.Header().Set("Content-Length", strconv.FormatInt(f.size, 10))
	if f.path == "" {
		_, _ = w.Write(f.data)
		return
	}
	file, err := os.Open(f.path)
	if err != nil {
		return
	}
	defer file.Close()
	_, _ = io.Copy(w, file)
}

// handleV3TradeBill serves GET /v3/bill/tradebill: the day's bill's hash
// and a download link under this sandbox, valid for a few minutes.
func (s *Server) handleV3TradeBill(r *http.Request, _ []byte) v3Answer {
	q := r.URL.Query()
	date := q.Get("bill_date")
	day, ok := billDay(date, "2006-01-02")
	switch {
	case !ok:
		return v3ParamError("bill_date must be YYYY-MM-DD")
	case day.After(s.now()):
		return v3ParamError("bill_date must not be in the future")
	case q.Get("bill_type") != "" && q.Get("bill_type") != "ALL":
		return v3ParamError("the sandbox serves bill_type ALL only")
	case q.Get("tar_type") != "" && q.Get("tar_type") != "GZIP":
		return v3ParamError("tar_type must be GZIP")
	}
	if s.bills.takeCreating(date) {
		return v3Fail(http.StatusBadRequest, "STATEMENT_CREATING", "账单生成中，请稍后再试")
	}
	f, err := s.billFor(date, day, q.Get("tar_type") == "GZIP")
	if errors.Is(err, errNoBill) {
		return v3Fail(http.StatusBadRequest, "NO_STATEMENT_EXIST", "账单文件不存在")
	}
	if err != nil {
		s.log.Error("make bill", "date", date, "error", err)
		return v3Fail(http.StatusInternalServerError, "SYSTEM_ERROR", "系统错误")
	}
	link := *f
	link.expires = s.now().Add(billLinkTTL)
	token := randomAlnum(48)
	s.bills.mu.Lock()
	s.bills.links[token] = &link
	wrong := s.bills.switches[date] != nil && s.bills.switches[date].WrongHash
	s.bills.mu.Unlock()
	hash := f.sha1
	if wrong {
		sum := sha1.Sum([]byte(f.sha1))
		hash = hex.EncodeToString(sum[:])
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	tar := ""
	if f.gzip {
		tar = "&tartype=gzip"
	}
	return v3Answer{http.StatusOK, map[string]string{
		"hash_type": "SHA1", "hash_value": hash,
		"download_url": scheme + "://" + r.Host + "/v3/billdownload/file?token=" + token + tar,
	}}
}

// handleV3BillDownload serves GET /v3/billdownload/file: the request must be
// signed by the merchant; the bill comes without a WeChat signature.
func (s *Server) handleV3BillDownload(w http.ResponseWriter, r *http.Request) {
	if s.v3 == nil {
		writeJSON(w, http.StatusInternalServerError, v3Error{Code: "SYSTEM_ERROR", Message: errNoV3KeysText})
		return
	}
	if a := s.verifyV3Request(r, nil); a.status != 0 {
		s.writeV3(w, r, a)
		return
	}
	token := r.URL.Query().Get("token")
	s.bills.mu.Lock()
	f := s.bills.links[token]
	refuse := f == nil || s.now().After(f.expires)
	if sw := s.bills.switches[dateOf(f)]; !refuse && sw != nil && sw.ExpireLinks > 0 {
		sw.ExpireLinks--
		refuse = true
	}
	s.bills.mu.Unlock()
	s.log.Info("v3 call", "api", "v3", "op", "billdownload", "refused", refuse)
	if refuse {
		s.writeV3(w, r, v3Fail(http.StatusBadRequest, "INVALID_REQUEST", "下载链接已失效，请重新申请账单"))
		return
	}
	f.serve(w)
}

func dateOf(f *billFile) string {
	if f == nil {
		return ""
	}
	return f.date
}

// handleV2DownloadBill serves POST /pay/downloadbill (bill_date=YYYYMMDD,
// bill_type ALL, tar_type GZIP): the file itself, or unsigned XML with
// return_code FAIL ("No Bill Exist", "Bill Creating", parameter errors).
func (s *Server) handleV2DownloadBill(w http.ResponseWriter, r *http.Request) {
	log := s.log.With("api", "v2", "op", "downloadbill")
	req, ok := s.v2Request(w, r, log)
	if !ok {
		return
	}
	fail := func(msg string) { writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": msg}) }
	day, ok := billDay(req["bill_date"], "20060102")
	switch {
	case !ok:
		fail("invalid bill_date")
		return
	case day.After(s.now()):
		fail("invalid bill_date")
		return
	case req["bill_type"] != "" && req["bill_type"] != "ALL":
		fail("the sandbox serves bill_type ALL only")
		return
	case req["tar_type"] != "" && req["tar_type"] != "GZIP":
		fail("invalid tar_type")
		return
	}
	date := day.Format("2006-01-02")
	if s.bills.takeCreating(date) {
		fail("Bill Creating")
		return
	}
	f, err := s.billFor(date, day, req["tar_type"] == "GZIP")
	if errors.Is(err, errNoBill) {
		fail("No Bill Exist")
		return
	}
	if err != nil {
		log.Error("make bill", "date", date, "error", err)
		fail("system error")
		return
	}
	log.Info("bill downloaded", "date", date, "bytes", f.size)
	f.serve(w)
}

// handleBillSwitches serves POST /sim/bills/{date}: the day's switches
// (replacing earlier ones). A synthetic bill is generated before the answer.
func (s *Server) handleBillSwitches(w http.ResponseWriter, r *http.Request) {
	date := r.PathValue("date")
	day, ok := billDay(date, "2006-01-02")
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "the date must be YYYY-MM-DD")
		return
	}
	var sw BillSwitches
	if err := decodeJSON(w, r, &sw); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := sw.check(); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.bills.mu.Lock()
	s.bills.switches[date] = &sw
	s.bills.mu.Unlock()
	if sw.SyntheticRows > 0 {
		if _, err := s.syntheticBill(date, day, sw); err != nil {
			writeJSONError(w, http.StatusInternalServerError, "could not write the synthetic bill")
			return
		}
	}
	s.log.Info("bill switches set", "date", date, "switches", sw)
	s.handleBillView(w, r)
}

// handleBillView serves GET /sim/bills/{date}.
func (s *Server) handleBillView(w http.ResponseWriter, r *http.Request) {
	date := r.PathValue("date")
	day, ok := billDay(date, "2006-01-02")
	if !ok {
		writeJSONError(w, http.StatusBadRequest, "the date must be YYYY-MM-DD")
		return
	}
	sw := s.bills.switchesOf(date)
	v := BillView{Date: date, Switches: sw, Rows: sw.SyntheticRows}
	if sw.SyntheticRows == 0 {
		v.Rows = len(s.rowsOf(day, sw))
	}
	writeJSON(w, http.StatusOK, v)
}

// maxSyntheticRows bounds a synthetic bill (some 3 GB uncompressed).
const maxSyntheticRows = 10_000_000

func (sw BillSwitches) check() error {
	switch {
	case sw.Creating < 0 || sw.ExpireLinks < 0:
		return errors.New("creating and expire_links must be >= 0")
	case sw.SyntheticRows < 0 || sw.SyntheticRows > maxSyntheticRows:
		return fmt.Errorf("synthetic_rows must be 0 to %d", maxSyntheticRows)
	case sw.SyntheticPrefix != "" && (len(sw.SyntheticPrefix) > 20 || !payment.ValidOutTradeNo(sw.SyntheticPrefix+"0000000000")):
		return errors.New("synthetic_prefix must be at most 20 of A-Z a-z 0-9 _ - | *")
	}
	for no, fen := range sw.Amounts {
		if fen <= 0 || !payment.ValidOutTradeNo(no) {
			return errors.New("amounts must map out_trade_no to an amount in fen > 0")
		}
	}
	for _, e := range sw.Extra {
		if e.AmountFen <= 0 || !payment.ValidOutTradeNo(e.OutTradeNo) || !alnum(e.TransactionID) {
			return errors.New("extra trades need out_trade_no, amount_fen > 0 and a transaction_id of letters and digits (or none)")
		}
	}
	for _, f := range sw.Refunds {
		switch f.Status {
		case "", "SUCCESS", "PROCESSING", "REFUNDCLOSE", "CHANGE":
		default:
			return errors.New("a refund's status must be SUCCESS, PROCESSING, REFUNDCLOSE or CHANGE")
		}
		if f.AmountFen <= 0 || !payment.ValidOutTradeNo(f.OutTradeNo) || !payment.ValidOutRefundNo(f.OutRefundNo) || !alnum(f.RefundID) {
			return errors.New("refunds need out_trade_no, out_refund_no, amount_fen > 0 and a refund_id of letters and digits (or none)")
		}
	}
	return nil
}

func alnum(s string) bool {
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return len(s) <= 32
}
