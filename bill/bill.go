package bill

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
	"strings"
	"time"
)

// Column names of the ALL bill's detail header, as WeChat writes them.
// Only those the reader uses are listed; other columns are skipped.
const (
	ColTradeTime            = "交易时间"
	ColMchID                = "商户号"
	ColTransactionID        = "微信订单号"
	ColOutTradeNo           = "商户订单号"
	ColTradeState           = "交易状态"
	ColSettlementAmount     = "应结订单金额"
	ColCouponAmount         = "代金券金额"
	ColRefundID             = "微信退款单号"
	ColOutRefundNo          = "商户退款单号"
	ColRefundAmount         = "退款金额"
	ColRechargeCouponRefund = "充值券退款金额"
	ColRefundStatus         = "退款状态"
	ColFee                  = "手续费"
	ColOrderAmount          = "订单金额"
	ColAppliedRefundAmount  = "申请退款金额"
)

// Column names of the summary header.
const (
	SumCount                = "总交易单数"
	SumSettlementAmount     = "应结订单总金额"
	SumRefundAmount         = "退款总金额"
	SumRechargeCouponRefund = "充值券退款总金额"
	SumFee                  = "手续费总金额"
	SumOrderAmount          = "订单总金额"
	SumAppliedRefundAmount  = "申请退款总金额"
)

// Values of 交易状态.
const (
	StateSuccess = "SUCCESS" // a payment, dated by its success time
	StateRefund  = "REFUND"  // a refund, dated by WeChat's acceptance of it
	StateRevoked = "REVOKED" // a revoked micropay order
)

// Kind tells a bill row's nature, from its 交易状态.
type Kind string

const (
	KindPayment Kind = "payment"
	KindRefund  Kind = "refund"
	KindRevoked Kind = "revoked"
)

// Sentinels; test with errors.Is. Every error the Reader returns for a bad
// bill wraps ErrInvalid as well.
var (
	// ErrInvalid: the bill is not a well-formed trade bill.
	ErrInvalid = errors.New("bill: invalid trade bill")
	// ErrSummaryMismatch: the summary row disagrees with the detail rows.
	ErrSummaryMismatch = errors.New("bill: summary does not match the detail rows")
	// ErrHashMismatch: the uncompressed bill's SHA-1 is not WeChat's hash_value.
	ErrHashMismatch = errors.New("bill: SHA-1 of the bill differs from hash_value")
	// ErrTooLarge: the uncompressed bill exceeds Options.MaxBytes.
	ErrTooLarge = errors.New("bill: bill larger than allowed")
)

// Row is one detail row. Amounts are in fen; Fee is in milli-fen
// (0.00001 yuan), the precision of the 手续费 column, and negative on refund
// rows. Columns the bill lacks read as zero or empty.
type Row struct {
	Line          int       // line number in the file, from 1
	Kind          Kind      // payment, refund or revoked
	TradeTime     time.Time // 交易时间 (Beijing): success time of a payment, acceptance of a refund
	MchID         string    // 商户号
	TransactionID string    // 微信订单号
	OutTradeNo    string    // 商户订单号
	TradeState    string    // 交易状态: SUCCESS, REFUND or REVOKED

	SettlementFen int64 // 应结订单金额: the order amount less non-recharge coupons
	CouponFen     int64 // 代金券金额
	OrderFen      int64 // 订单金额: the order's total, what the order query reports

	RefundID                string // 微信退款单号 ("" on payment rows)
	OutRefundNo             string // 商户退款单号 ("" on payment rows)
	RefundFen               int64  // 退款金额
	RechargeCouponRefundFen int64  // 充值券退款金额
	AppliedRefundFen        int64  // 申请退款金额: the amount the refund asked for
	RefundStatus            string // 退款状态, as WeChat wrote it (see RefundStatus)

	FeeMilliFen int64 // 手续费
}

// Totals are the summary's figures: the count of detail rows and the sum of
// each amount column.
type Totals struct {
	Rows                    int64
	SettlementFen           int64
	RefundFen               int64
	RechargeCouponRefundFen int64
	FeeMilliFen             int64
	OrderFen                int64
	AppliedRefundFen        int64
}

// Options configure a Reader.
type Options struct {
	// MchID, when set, is the merchant every detail row must belong to.
	MchID string
	// SHA1, when set, is the hex SHA-1 (WeChat's hash_value) the
	// uncompressed bill must have; it is checked once the whole file is read.
	SHA1 string
	// MaxBytes bounds the uncompressed bill (DefaultMaxBytes when 0).
	MaxBytes int64
}

// DefaultMaxBytes bounds an uncompressed bill: some 20 million rows.
const DefaultMaxBytes = 8 << 30

// maxLine bounds one line of the bill.
const maxLine = 64 << 10

// Reader reads a bill row by row. It is not safe for concurrent use.
type Reader struct {
	opts   Options
	src    *countingReader
	br     *bufio.Reader
	line   int
	cols   detailColumns
	ncols  int
	fields []string

	started bool
	done    bool
	err     error

	computed Totals // sums of the detail rows read so far
	summary  Totals // the summary row, once read
}

// NewReader reads an uncompressed bill from r.
func NewReader(r io.Reader, opts Options) *Reader {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	src := &countingReader{r: r, h: sha1.New(), limit: opts.MaxBytes}
	return &Reader{opts: opts, src: src, br: bufio.NewReaderSize(src, maxLine)}
}

// NewGzipReader reads a gzip-compressed bill (tar_type=GZIP) from r. The
// SHA-1 and the size limit apply to the uncompressed bytes.
func NewGzipReader(r io.Reader, opts Options) (*Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip stream: %v", ErrInvalid, err)
	}
	return NewReader(zr, opts), nil
}

// Next returns the next detail row. After the last one it checks the
// summary and the hash and returns io.EOF if the bill checks out, or an
// error wrapping ErrInvalid (and ErrSummaryMismatch or ErrHashMismatch when
// that is why). Errors are sticky.
func (r *Reader) Next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	if r.done {
		return Row{}, io.EOF
	}
	row, err := r.next()
	if err != nil {
		r.err = err
		if err == io.EOF {
			r.done = true
		}
		return Row{}, err
	}
	return row, nil
}

// Computed are the totals of the detail rows read so far.
func (r *Reader) Computed() Totals { return r.computed }

// Summary is the bill's summary row; valid once Next returned io.EOF.
func (r *Reader) Summary() Totals { return r.summary }

// SHA1 is the hex SHA-1 of the uncompressed bytes read so far: the whole
// bill once Next returned io.EOF.
func (r *Reader) SHA1() string { return hex.EncodeToString(r.src.h.Sum(nil)) }

// BytesRead counts the uncompressed bytes read so far.
func (r *Reader) BytesRead() int64 { return r.src.n }

func (r *Reader) next() (Row, error) {
	if !r.started {
		r.started = true
		if err := r.readHeader(); err != nil {
			return Row{}, err
		}
	}
	line, err := r.readLine()
	if err == io.EOF {
		return Row{}, r.errorf("the bill ends without its summary")
	}
	if err != nil {
		return Row{}, err
	}
	if len(line) > 0 && line[0] == '`' {
		return r.parseDetail(line)
	}
	if err := r.readSummary(line); err != nil {
		return Row{}, err
	}
	return Row{}, io.EOF
}

func (r *Reader) errorf(format string, a ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrInvalid, r.line, fmt.Sprintf(format, a...))
}

// readLine returns the next line without its line ending. io.EOF means no
// further line; a last line without a newline is returned normally.
func (r *Reader) readLine() (string, error) {
	b, err := r.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		r.line++
		return "", r.errorf("line longer than %d bytes", maxLine)
	case err == io.EOF && len(b) == 0:
		return "", io.EOF
	case err != nil && err != io.EOF:
		return "", r.readError(err)
	}
	r.line++
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	return string(b), nil
}

func (r *Reader) readError(err error) error {
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("%w: %w: more than %d bytes", ErrInvalid, ErrTooLarge, r.opts.MaxBytes)
	}
	if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) {
		return fmt.Errorf("%w: line %d: the compressed stream is damaged: %v", ErrInvalid, r.line+1, err)
	}
	// A transport error, or a download cut short (io.ErrUnexpectedEOF):
	// worth another try, not a verdict on the bill.
	return fmt.Errorf("bill: read after line %d: %w", r.line, err)
}

// readHeader reads the detail header and maps the columns.
func (r *Reader) readHeader() error {
	line, err := r.readLine()
	if err == io.EOF {
		return r.errorf("empty bill")
	}
	if err != nil {
		return err
	}
	line = strings.TrimPrefix(line, "\uFEFF") // a UTF-8 byte order mark starts some bills
	if strings.HasPrefix(line, "`") {
		return r.errorf("the bill starts with a data row, not the header")
	}
	names := strings.Split(line, ",")
	cols, err := mapDetailColumns(names)
	if err != nil {
		return r.errorf("%v", err)
	}
	r.cols, r.ncols = cols, len(names)
	r.fields = make([]string, 0, len(names))
	return nil
}

// split splits a back-ticked row into its fields. Every field starts with
// a back-tick, so fields are separated by ",`" and a comma inside a field
// (say in 商品名称) stays where it is.
func (r *Reader) split(line string, want int) ([]string, error) {
	if !strings.HasPrefix(line, "`") {
		return nil, r.errorf("a data row must start with a back-tick")
	}
	fields := r.fields[:0]
	rest := line[1:]
	for {
		i := strings.Index(rest, ",`")
		if i < 0 {
			fields = append(fields, rest)
			break
		}
		fields = append(fields, rest[:i])
		rest = rest[i+2:]
		if len(fields) > want {
			break
		}
	}
	if len(fields) != want {
		return nil, r.errorf("%d fields, the header has %d", len(fields), want)
	}
	r.fields = fields
	return fields, nil
}

func (r *Reader) parseDetail(line string) (Row, error) {
	f, err := r.split(line, r.ncols)
	if err != nil {
		return Row{}, err
	}
	c := r.cols
	row := Row{Line: r.line, TradeState: f[c.tradeState]}
	switch row.TradeState {
	case StateSuccess:
		row.Kind = KindPayment
	case StateRefund:
		row.Kind = KindRefund
	case StateRevoked:
		row.Kind = KindRevoked
	default:
		return Row{}, r.errorf("交易状态 %q is none of SUCCESS, REFUND, REVOKED", clip(row.TradeState))
	}
	if row.TradeTime, err = time.ParseInLocation(timeLayout, f[c.tradeTime], beijing); err != nil {
		return Row{}, r.errorf("交易时间 %q is not yyyy-MM-dd HH:mm:ss", clip(f[c.tradeTime]))
	}
	row.MchID = f[c.mchID]
	if r.opts.MchID != "" && row.MchID != r.opts.MchID {
		return Row{}, r.errorf("商户号 %q is not this merchant", clip(row.MchID))
	}
	if row.TransactionID, err = id(f[c.transactionID]); err != nil {
		return Row{}, r.errorf("微信订单号: %v", err)
	}
	if row.OutTradeNo, err = id(f[c.outTradeNo]); err != nil {
		return Row{}, r.errorf("商户订单号: %v", err)
	}
	amounts := []struct {
		col  int
		name string
		dst  *int64
	}{
		{c.settlement, ColSettlementAmount, &row.SettlementFen},
		{c.coupon, ColCouponAmount, &row.CouponFen},
		{c.refund, ColRefundAmount, &row.RefundFen},
		{c.rechargeCouponRefund, ColRechargeCouponRefund, &row.RechargeCouponRefundFen},
		{c.orderAmount, ColOrderAmount, &row.OrderFen},
		{c.appliedRefund, ColAppliedRefundAmount, &row.AppliedRefundFen},
	}
	for _, a := range amounts {
		if a.col < 0 {
			continue
		}
		if *a.dst, err = ParseYuan(f[a.col]); err != nil {
			return Row{}, r.errorf("%s: %v", a.name, err)
		}
	}
	if row.FeeMilliFen, err = ParseFee(f[c.fee]); err != nil {
		return Row{}, r.errorf("%s: %v", ColFee, err)
	}
	if row.Kind == KindRefund {
		if row.RefundID, err = id(f[c.refundID]); err != nil || row.RefundID == "0" {
			return Row{}, r.errorf("refund row without a valid 微信退款单号 %q", clip(f[c.refundID]))
		}
		if row.OutRefundNo, err = id(f[c.outRefundNo]); err != nil || row.OutRefundNo == "0" {
			return Row{}, r.errorf("refund row without a valid 商户退款单号 %q", clip(f[c.outRefundNo]))
		}
		row.RefundStatus = f[c.refundStatus]
		if RefundStatus(row.RefundStatus) == "" {
			return Row{}, r.errorf("退款状态 %q is not a refund status", clip(row.RefundStatus))
		}
	}
	if row.Kind == KindPayment && (row.TransactionID == "" || row.OutTradeNo == "") {
		return Row{}, r.errorf("payment row without 微信订单号 or 商户订单号")
	}
	t := &r.computed
	t.Rows++
	t.SettlementFen += row.SettlementFen
	t.RefundFen += row.RefundFen
	t.RechargeCouponRefundFen += row.RechargeCouponRefundFen
	t.FeeMilliFen += row.FeeMilliFen
	t.OrderFen += row.OrderFen
	t.AppliedRefundFen += row.AppliedRefundFen
	return row, nil
}

// readSummary reads the summary header (already in line) and row, the end
// of the file, and checks totals and hash.
func (r *Reader) readSummary(header string) error {
	names := strings.Split(header, ",")
	idx := make(map[string]int, len(names))
	for i, n := range names {
		idx[strings.TrimSpace(n)] = i
	}
	if _, ok := idx[SumCount]; !ok {
		return r.errorf("expected a detail row (starting with a back-tick) or the summary header (%s, …)", SumCount)
	}
	if len(idx) != len(names) {
		return r.errorf("the summary header names a column twice")
	}
	line, err := r.readLine()
	if err == io.EOF {
		return r.errorf("the summary header is not followed by the summary row")
	}
	if err != nil {
		return err
	}
	f, err := r.split(line, len(names))
	if err != nil {
		return err
	}
	cnt, err := parseCount(f[idx[SumCount]])
	if err != nil {
		return r.errorf("%s: %v", SumCount, err)
	}
	r.summary.Rows = cnt
	checks := []struct {
		sum, detail string
		detailCol   int
		got         int64
		dst         *int64
		fee         bool
	}{
		{SumSettlementAmount, ColSettlementAmount, r.cols.settlement, r.computed.SettlementFen, &r.summary.SettlementFen, false},
		{SumRefundAmount, ColRefundAmount, r.cols.refund, r.computed.RefundFen, &r.summary.RefundFen, false},
		{SumRechargeCouponRefund, ColRechargeCouponRefund, r.cols.rechargeCouponRefund, r.computed.RechargeCouponRefundFen, &r.summary.RechargeCouponRefundFen, false},
		{SumFee, ColFee, r.cols.fee, r.computed.FeeMilliFen, &r.summary.FeeMilliFen, true},
		{SumOrderAmount, ColOrderAmount, r.cols.orderAmount, r.computed.OrderFen, &r.summary.OrderFen, false},
		{SumAppliedRefundAmount, ColAppliedRefundAmount, r.cols.appliedRefund, r.computed.AppliedRefundFen, &r.summary.AppliedRefundFen, false},
	}
	var mismatches []string
	if cnt != r.computed.Rows {
		mismatches = append(mismatches, fmt.Sprintf("%s %d, detail rows %d", SumCount, cnt, r.computed.Rows))
	}
	for _, c := range checks {
		i, ok := idx[c.sum]
		if !ok {
			continue // an older or newer summary without this total
		}
		if c.detailCol < 0 {
			return r.errorf("the summary has %s but the details have no %s column", c.sum, c.detail)
		}
		var v int64
		if c.fee {
			v, err = ParseFee(f[i])
		} else {
			v, err = ParseYuan(f[i])
		}
		if err != nil {
			return r.errorf("%s: %v", c.sum, err)
		}
		*c.dst = v
		if v != c.got {
			unit := formatFen
			if c.fee {
				unit = formatMilliFen
			}
			mismatches = append(mismatches, fmt.Sprintf("%s %s, detail rows add up to %s", c.sum, unit(v), unit(c.got)))
		}
	}
	// Nothing but blank lines may follow; read to the end so that the hash
	// covers every byte.
	for {
		rest, err := r.readLine()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if strings.TrimSpace(rest) != "" {
			return r.errorf("data after the summary row")
		}
	}
	if len(mismatches) > 0 {
		return fmt.Errorf("%w: %w: %s", ErrInvalid, ErrSummaryMismatch, strings.Join(mismatches, "; "))
	}
	if r.opts.SHA1 != "" {
		if got := r.SHA1(); !strings.EqualFold(got, strings.TrimSpace(r.opts.SHA1)) {
			return fmt.Errorf("%w: %w: got %s, hash_value %s", ErrInvalid, ErrHashMismatch, got, clip(r.opts.SHA1))
		}
	}
	return nil
}

// RefundStatus normalises a bill's 退款状态 to the refund statuses of the
// API (SUCCESS, PROCESSING, CLOSED, ABNORMAL): the bill may use API v2's
// words, REFUNDCLOSE for CLOSED and CHANGE for ABNORMAL. It returns "" for
// anything else.
func RefundStatus(s string) string {
	switch s {
	case "SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL":
		return s
	case "REFUNDCLOSE":
		return "CLOSED"
	case "CHANGE":
		return "ABNORMAL"
	}
	return ""
}

// detailColumns are the indexes of the columns the reader uses; -1 when an
// optional column is absent.
type detailColumns struct {
	tradeTime, mchID, transactionID, outTradeNo, tradeState                 int
	settlement, coupon, refundID, outRefundNo, refund, rechargeCouponRefund int
	refundStatus, fee, orderAmount, appliedRefund                           int
}

func mapDetailColumns(names []string) (detailColumns, error) {
	idx := make(map[string]int, len(names))
	for i, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			return detailColumns{}, fmt.Errorf("column %d of the header has no name", i+1)
		}
		if _, dup := idx[n]; dup {
			return detailColumns{}, fmt.Errorf("the header names %q twice", clip(n))
		}
		idx[n] = i
	}
	var missing []string
	need := func(name string) int {
		i, ok := idx[name]
		if !ok {
			missing = append(missing, name)
			return -1
		}
		return i
	}
	opt := func(name string) int {
		if i, ok := idx[name]; ok {
			return i
		}
		return -1
	}
	c := detailColumns{
		tradeTime:            need(ColTradeTime),
		mchID:                need(ColMchID),
		transactionID:        need(ColTransactionID),
		outTradeNo:           need(ColOutTradeNo),
		tradeState:           need(ColTradeState),
		settlement:           need(ColSettlementAmount),
		coupon:               opt(ColCouponAmount),
		refundID:             need(ColRefundID),
		outRefundNo:          need(ColOutRefundNo),
		refund:               need(ColRefundAmount),
		rechargeCouponRefund: opt(ColRechargeCouponRefund),
		refundStatus:         need(ColRefundStatus),
		fee:                  need(ColFee),
		orderAmount:          need(ColOrderAmount),
		appliedRefund:        need(ColAppliedRefundAmount),
	}
	if len(missing) > 0 {
		return detailColumns{}, fmt.Errorf("the header lacks %s (is this an ALL trade bill?)", strings.Join(missing, ", "))
	}
	return c, nil
}

// timeLayout is 交易时间's format, Beijing time.
const timeLayout = "2006-01-02 15:04:05"

// beijing is WeChat's time zone (UTC+8, no daylight saving).
var beijing = time.FixedZone("CST", 8*3600)

// maxID bounds an identifier (out_trade_no ≤ 32, out_refund_no ≤ 64).
const maxID = 64

// id checks an identifier field: at most 64 printable ASCII characters
// without spaces or commas; "" is allowed (the caller decides).
func id(s string) (string, error) {
	if len(s) > maxID {
		return "", fmt.Errorf("%q is longer than %d characters", clip(s), maxID)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == ',' {
			return "", fmt.Errorf("%q has a character other than printable ASCII", clip(s))
		}
	}
	return s, nil
}

// ParseYuan parses an amount in yuan with exactly two decimals ("12.34",
// "0.00") to fen, exactly. Signs, spaces, exponents, thousands separators,
// leading zeros and any other number of decimals are rejected.
func ParseYuan(s string) (int64, error) {
	return parseDecimal(s, 2, 2, 2, false)
}

// ParseFee parses a 手续费 amount, yuan with two to five decimals and an
// optional minus sign ("0.32000", "-0.27000"), to milli-fen (0.00001 yuan).
func ParseFee(s string) (int64, error) {
	return parseDecimal(s, 2, 5, 5, true)
}

// parseDecimal parses [-]digits.digits with minDec to maxDec decimals and
// returns the value scaled to scale decimals.
func parseDecimal(s string, minDec, maxDec, scale int, allowNeg bool) (int64, error) {
	bad := func() (int64, error) {
		return 0, fmt.Errorf("%q is not a yuan amount with %s decimals", clip(s), decimals(minDec, maxDec))
	}
	neg := false
	if allowNeg && strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	intPart, frac, ok := strings.Cut(s, ".")
	if !ok || len(intPart) == 0 || len(intPart) > 13 || len(frac) < minDec || len(frac) > maxDec {
		return bad()
	}
	if len(intPart) > 1 && intPart[0] == '0' {
		return bad()
	}
	var v int64
	for i := 0; i < len(intPart); i++ {
		c := intPart[i]
		if c < '0' || c > '9' {
			return bad()
		}
		v = v*10 + int64(c-'0')
	}
	for i := 0; i < scale; i++ {
		v *= 10
		if i < len(frac) {
			c := frac[i]
			if c < '0' || c > '9' {
				return bad()
			}
			v += int64(c - '0')
		}
	}
	if neg {
		v = -v
	}
	return v, nil
}

func decimals(lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

// parseCount parses 总交易单数: digits only.
func parseCount(s string) (int64, error) {
	if s == "" || len(s) > 15 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a count", clip(s))
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a count", clip(s))
		}
		v = v*10 + int64(c-'0')
	}
	return v, nil
}

// FormatYuan renders fen as WeChat writes amounts: yuan with two decimals.
func FormatYuan(fen int64) string { return formatFen(fen) }

func formatFen(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

func formatMilliFen(v int64) string {
	sign := ""
	if v < 0 {
		sign, v = "-", -v
	}
	return fmt.Sprintf("%s%d.%05d", sign, v/100000, v%100000)
}

// clip shortens text quoted in an error.
func clip(s string) string {
	if len(s) <= 40 {
		return s
	}
	return s[:40] + "…"
}

// countingReader hashes and counts what passes through it and fails past
// its limit.
type countingReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		// One more byte would tell a file of exactly limit bytes from a
		// larger one; reading it costs nothing extra.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, ErrTooLarge
		}
		return 0, err
	}
	if rem := c.limit - c.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}
