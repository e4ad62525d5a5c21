package bill

import (
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// allHeader is the ALL bill's detail header in the order of WeChat's
// format page (pay.weixin.qq.com/docs/merchant/products/bill-download/
// format-trade.html), which real bills follow.
const allHeader = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类," +
	"应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包," +
	"手续费,费率,订单金额,申请退款金额,费率备注"

const summaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"

const testMch = "1900000109"

// row renders one detail row from its 27 values, each back-ticked.
func row(v ...string) string {
	if len(v) != 27 {
		panic(fmt.Sprintf("%d values", len(v)))
	}
	return "`" + strings.Join(v, ",`")
}

// payment is a SUCCESS row: order amount, coupon, fee in yuan text.
func payment(at, txid, no, order, coupon, fee, desc string) string {
	settle := yuanSub(order, coupon)
	return row(at, "wx8888888888888888", testMch, "0", "", txid, no, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "NATIVE", "SUCCESS",
		"OTHERS", "CNY", settle, coupon, "0", "0", "0.00", "0.00", "", "", desc, "", fee, "0.60%", order, "0.00", "")
}

// refund is a REFUND row of the order txid/no.
func refund(at, txid, no, refundID, outRefundNo, amount, status, fee string) string {
	return row(at, "wx8888888888888888", testMch, "0", "", txid, no, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "NATIVE", "REFUND",
		"OTHERS", "CNY", "0.00", "0.00", refundID, outRefundNo, amount, "0.00", "ORIGINAL", status, "咖啡", "", fee, "0.60%", "0.00", amount, "")
}

func yuanSub(a, b string) string {
	x, err := ParseYuan(a)
	if err != nil {
		panic(err)
	}
	y, err := ParseYuan(b)
	if err != nil {
		panic(err)
	}
	return FormatYuan(x - y)
}

// sampleLines is a day with odd rows: a payment with a coupon (代金券), a
// refund that is done and one still processing, a fee line rounding to a
// fraction of a fen, amounts that floating point gets wrong (0.29, 19.90,
// 1.67), a comma inside a product name, a revoked micropay order.
func sampleLines() []string {
	return []string{
		payment("2026-11-25 00:00:00", "4200000001202611250000000001", "ORDER0000000001", "0.29", "0.00", "0.00000", "咖啡"),
		payment("2026-11-25 09:30:12", "4200000001202611250000000002", "ORDER0000000002", "19.90", "0.00", "0.12000", "Latte, large"),
		payment("2026-11-25 12:00:00", "4200000001202611250000000003", "ORDER0000000003", "100.00", "5.00", "0.60000", "蛋糕"),
		payment("2026-11-25 18:45:59", "4200000001202611250000000004", "ORDER0000000004", "1.67", "0.00", "0.01000", "茶"),
		refund("2026-11-25 20:01:02", "4200000001202611240000000009", "ORDER0000000009", "50300000012026112500000001", "RF-1", "10.00", "SUCCESS", "-0.06000"),
		refund("2026-11-25 23:59:59", "4200000001202611250000000002", "ORDER0000000002", "50300000012026112500000002", "RF-2", "9.95", "PROCESSING", "-0.06000"),
		row("2026-11-25 13:13:13", "wx8888888888888888", testMch, "0", "", "4200000001202611250000000005", "ORDER0000000005", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
			"MICROPAY", "REVOKED", "OTHERS", "CNY", "0.00", "0.00", "0", "0", "0.00", "0.00", "", "", "撤销", "", "0.00000", "0.60%", "0.00", "0.00", ""),
	}
}

// sampleSummary matches sampleLines: 7 rows; settlement 0.29+19.90+95.00+1.67;
// refunds 10.00+9.95; fees 0+0.12+0.60+0.01-0.06-0.06; order totals
// 0.29+19.90+100.00+1.67.
const sampleSummary = "`7,`116.86,`19.95,`0.00,`0.61000,`121.86,`19.95"

// document joins a bill as WeChat writes it: a byte order mark, CRLF.
func document(lines []string, summary string) string {
	var b strings.Builder
	b.WriteString("\uFEFF" + allHeader + "\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString(summaryHeader + "\r\n" + summary + "\r\n")
	return b.String()
}

func readAll(t testing.TB, r *Reader) ([]Row, error) {
	t.Helper()
	var rows []Row
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

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Name = testMch + "All2026-11-25.csv"
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadsWeChatShapedBill(t *testing.T) {
	doc := document(sampleLines(), sampleSummary)
	r, err := NewGzipReader(bytes.NewReader(gz(t, doc)), Options{MchID: testMch, SHA1: strings.ToUpper(sha1Hex(doc))})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readAll(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 7 {
		t.Fatalf("%d rows", len(rows))
	}
	p0, p1, p2, p3, r0, r1, v := rows[0], rows[1], rows[2], rows[3], rows[4], rows[5], rows[6]
	bj := time.FixedZone("CST", 8*3600)
	if p0.Kind != KindPayment || p0.OutTradeNo != "ORDER0000000001" || p0.TransactionID != "4200000001202611250000000001" ||
		p0.OrderFen != 29 || p0.SettlementFen != 29 || !p0.TradeTime.Equal(time.Date(2026, 11, 25, 0, 0, 0, 0, bj)) || p0.Line != 2 {
		t.Errorf("first payment %+v", p0)
	}
	if p1.OrderFen != 1990 || p1.FeeMilliFen != 12000 || p3.OrderFen != 167 || p3.FeeMilliFen != 1000 {
		t.Errorf("amounts floating point gets wrong: %+v %+v", p1, p3)
	}
	if p2.OrderFen != 10000 || p2.CouponFen != 500 || p2.SettlementFen != 9500 {
		t.Errorf("coupon payment %+v: the order amount is what the order query reports", p2)
	}
	if r0.Kind != KindRefund || r0.OutRefundNo != "RF-1" || r0.RefundID != "50300000012026112500000001" || r0.RefundFen != 1000 ||
		r0.AppliedRefundFen != 1000 || r0.OrderFen != 0 || r0.FeeMilliFen != -6000 || r0.RefundStatus != "SUCCESS" || r0.OutTradeNo != "ORDER0000000009" {
		t.Errorf("refund %+v", r0)
	}
	if r1.RefundStatus != "PROCESSING" || r1.AppliedRefundFen != 995 {
		t.Errorf("processing refund %+v", r1)
	}
	if v.Kind != KindRevoked || v.OutTradeNo != "ORDER0000000005" {
		t.Errorf("revoked %+v", v)
	}
	want := Totals{Rows: 7, SettlementFen: 11686, RefundFen: 1995, FeeMilliFen: 61000, OrderFen: 12186, AppliedRefundFen: 1995}
	if r.Summary() != want || r.Computed() != want {
		t.Errorf("summary %+v computed %+v, want %+v", r.Summary(), r.Computed(), want)
	}
	if r.SHA1() != sha1Hex(doc) || r.BytesRead() != int64(len(doc)) {
		t.Errorf("hash %s over %d bytes", r.SHA1(), r.BytesRead())
	}
	// Errors are sticky and EOF repeats.
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("after the end: %v", err)
	}
}

// Columns are found by name: the same bill with its columns in another
// order (header and rows alike) reads the same.
func TestColumnsFoundByName(t *testing.T) {
	header := strings.Split(allHeader, ",")
	perm := rand.New(rand.NewPCG(1, 2)).Perm(len(header))
	reorder := func(fields []string) []string {
		out := make([]string, len(fields))
		for i, j := range perm {
			out[i] = fields[j]
		}
		return out
	}
	var lines []string
	for _, l := range sampleLines() {
		lines = append(lines, "`"+strings.Join(reorder(strings.Split(l[1:], ",`")), ",`"))
	}
	sh := strings.Split(summaryHeader, ",")
	sv := strings.Split(sampleSummary[1:], ",`")
	doc := strings.Join(reorder(header), ",") + "\n" + strings.Join(lines, "\n") + "\n" +
		strings.Join([]string{sh[6], sh[0], sh[3], sh[1], sh[2], sh[5], sh[4]}, ",") + "\n" +
		"`" + strings.Join([]string{sv[6], sv[0], sv[3], sv[1], sv[2], sv[5], sv[4]}, ",`")
	rows, err := readAll(t, NewReader(strings.NewReader(doc), Options{MchID: testMch}))
	if err != nil {
		t.Fatal(err)
	}
	want, err := readAll(t, NewReader(strings.NewReader(document(sampleLines(), sampleSummary)), Options{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}
}

// A day with only the headers and a zero summary.
func TestEmptyDay(t *testing.T) {
	doc := document(nil, "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00")
	r := NewReader(strings.NewReader(doc), Options{SHA1: sha1Hex(doc)})
	rows, err := readAll(t, r)
	if err != nil || len(rows) != 0 || r.Summary() != (Totals{}) {
		t.Fatalf("rows %v err %v summary %+v", rows, err, r.Summary())
	}
}

func TestHashChecked(t *testing.T) {
	doc := document(sampleLines(), sampleSummary)
	compressed := gz(t, doc)
	gzHash := sha1.Sum(compressed)
	for name, hash := range map[string]string{
		"another file's":  sha1Hex(doc + " "),
		"the gzip bytes'": hex.EncodeToString(gzHash[:]), // the mistake users make
		"garbage":         "not-a-hash",
	} {
		r, err := NewGzipReader(bytes.NewReader(compressed), Options{SHA1: hash})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := readAll(t, r)
		if !errors.Is(err, ErrHashMismatch) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s hash: err %v", name, err)
		}
		if len(rows) != 7 {
			t.Errorf("%s hash: the rows stream before the end: %d", name, len(rows))
		}
	}
}

func TestSummaryChecked(t *testing.T) {
	for name, summary := range map[string]string{
		"count":          "`6,`116.86,`19.95,`0.00,`0.61000,`121.86,`19.95",
		"settlement":     "`7,`116.85,`19.95,`0.00,`0.61000,`121.86,`19.95",
		"refunds":        "`7,`116.86,`19.96,`0.00,`0.61000,`121.86,`19.95",
		"recharge":       "`7,`116.86,`19.95,`0.01,`0.61000,`121.86,`19.95",
		"fee":            "`7,`116.86,`19.95,`0.00,`0.61001,`121.86,`19.95",
		"order total":    "`7,`116.86,`19.95,`0.00,`0.61000,`121.87,`19.95",
		"applied refund": "`7,`116.86,`19.95,`0.00,`0.61000,`121.86,`19.94",
	} {
		_, err := readAll(t, NewReader(strings.NewReader(document(sampleLines(), summary)), Options{}))
		if !errors.Is(err, ErrSummaryMismatch) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestMalformedBills(t *testing.T) {
	good := sampleLines()
	with := func(i int, l string) []string {
		out := append([]string{}, good...)
		out[i] = l
		return out
	}
	amount := func(v string) string {
		return row("2026-11-25 09:30:12", "wx8888888888888888", testMch, "0", "", "4200000001202611250000000002", "ORDER0000000002", "o", "NATIVE", "SUCCESS",
			"OTHERS", "CNY", v, "0.00", "0", "0", "0.00", "0.00", "", "", "x", "", "0.12000", "0.60%", v, "0.00", "")
	}
	cases := map[string]string{
		"empty":                 "",
		"no summary":            "\uFEFF" + allHeader + "\r\n" + strings.Join(good, "\r\n") + "\r\n",
		"summary header alone":  "\uFEFF" + allHeader + "\r\n" + strings.Join(good, "\r\n") + "\r\n" + summaryHeader + "\r\n",
		"data row first":        good[0] + "\n" + summaryHeader + "\n" + sampleSummary,
		"after summary":         document(good, sampleSummary) + "`1,`2\r\n",
		"missing column":        strings.Replace(document(good, sampleSummary), "订单金额,申请退款金额", "合计,申请退款金额", 1),
		"duplicate column":      strings.Replace(document(good, sampleSummary), "设备号", "商户号", 1),
		"short row":             document(with(1, good[1][:strings.LastIndex(good[1], ",`")]), sampleSummary),
		"row without backtick":  document(with(1, good[1][1:]), sampleSummary),
		"one decimal":           document(with(1, amount("19.9")), sampleSummary),
		"three decimals":        document(with(1, amount("19.900")), sampleSummary),
		"negative amount":       document(with(1, amount("-19.90")), sampleSummary),
		"exponent":              document(with(1, amount("1e1.00")), sampleSummary),
		"leading zero":          document(with(1, amount("019.90")), sampleSummary),
		"thousands":             document(with(1, amount("1,019.90")), sampleSummary),
		"space":                 document(with(1, amount(" 19.90")), sampleSummary),
		"plus":                  document(with(1, amount("+19.90")), sampleSummary),
		"no integer":            document(with(1, amount(".90")), sampleSummary),
		"unknown state":         document(with(0, strings.Replace(good[0], "`SUCCESS", "`NOTPAY", 1)), sampleSummary),
		"bad time":              document(with(0, strings.Replace(good[0], "2026-11-25 00:00:00", "2026/11/25 00:00", 1)), sampleSummary),
		"foreign merchant":      document(with(0, strings.Replace(good[0], "`"+testMch, "`1900000999", 1)), sampleSummary),
		"refund without no":     document(with(4, strings.Replace(good[4], "`RF-1", "`0", 1)), sampleSummary),
		"refund status unknown": document(with(4, strings.Replace(good[4], "`SUCCESS", "`DONE", 1)), sampleSummary),
		"id with space":         document(with(0, strings.Replace(good[0], "ORDER0000000001", "ORDER 0000000001", 1)), sampleSummary),
		"summary not a count":   document(good, strings.Replace(sampleSummary, "`7", "`7.0", 1)),
		"summary short":         document(good, "`7,`116.86"),
		"no count in summary":   strings.Replace(document(good, sampleSummary), "总交易单数", "交易单数", 1),
	}
	for name, doc := range cases {
		_, err := readAll(t, NewReader(strings.NewReader(doc), Options{MchID: testMch}))
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

// A long line is refused rather than buffered.
func TestLineTooLong(t *testing.T) {
	doc := document([]string{strings.Replace(sampleLines()[0], "咖啡", strings.Repeat("x", 70<<10), 1)}, sampleSummary)
	_, err := readAll(t, NewReader(strings.NewReader(doc), Options{}))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("err %v", err)
	}
}

func TestSizeLimit(t *testing.T) {
	doc := document(sampleLines(), sampleSummary)
	if _, err := readAll(t, NewReader(strings.NewReader(doc), Options{MaxBytes: int64(len(doc))})); err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
	_, err := readAll(t, NewReader(strings.NewReader(doc), Options{MaxBytes: int64(len(doc) - 1)}))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v", err)
	}
}

// A download cut short is a transport problem worth another try, not a
// verdict on the bill; a damaged stream is.
func TestTruncatedGzipIsNotInvalid(t *testing.T) {
	compressed := gz(t, document(sampleLines(), sampleSummary))
	r, err := NewGzipReader(bytes.NewReader(compressed[:len(compressed)-10]), Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = readAll(t, r)
	if err == nil || errors.Is(err, ErrInvalid) || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := NewGzipReader(strings.NewReader("<xml>FAIL</xml>"), Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("not gzip: %v", err)
	}
}

func TestRefundStatusWords(t *testing.T) {
	for in, want := range map[string]string{"SUCCESS": "SUCCESS", "PROCESSING": "PROCESSING", "REFUNDCLOSE": "CLOSED",
		"CLOSED": "CLOSED", "CHANGE": "ABNORMAL", "ABNORMAL": "ABNORMAL", "": "", "success": "", "FAILED": ""} {
		if got := RefundStatus(in); got != want {
			t.Errorf("RefundStatus(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseYuan(t *testing.T) {
	good := map[string]int64{"0.00": 0, "0.01": 1, "0.29": 29, "1.67": 167, "19.90": 1990, "100.00": 10000, "92233720368.54": 9223372036854}
	for s, want := range good {
		if got, err := ParseYuan(s); err != nil || got != want {
			t.Errorf("ParseYuan(%q) = %d, %v", s, got, err)
		}
		if FormatYuan(want) != s {
			t.Errorf("FormatYuan(%d) = %q", want, FormatYuan(want))
		}
	}
	for _, s := range []string{"", "1", "1.", ".10", "1.0", "1.000", "-1.00", "+1.00", "01.00", "1e2", "1.0a", "１.00", "1 .00", "1,000.00", "12345678901234.00", "NaN", "0x1.00"} {
		if v, err := ParseYuan(s); err == nil {
			t.Errorf("ParseYuan(%q) = %d, want an error", s, v)
		}
	}
	fees := map[string]int64{"0.00000": 0, "0.32000": 32000, "-0.27000": -27000, "0.00600": 600, "7.79": 779000, "-0.00": 0}
	for s, want := range fees {
		if got, err := ParseFee(s); err != nil || got != want {
			t.Errorf("ParseFee(%q) = %d, %v", s, got, err)
		}
	}
	for _, s := range []string{"0.000000", "0.0", "--1.00", "1", "0.60%"} {
		if _, err := ParseFee(s); err == nil {
			t.Errorf("ParseFee(%q): no error", s)
		}
	}
}

// A bill far larger than any buffer streams through: rows are produced by
// a generator as they are read, never held whole.
func TestStreamsLargeBill(t *testing.T) {
	const n = 100_000
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		w := zw
		fmt.Fprint(w, allHeader+"\n")
		var total int64
		for i := range n {
			fen := int64(1 + i%99999)
			total += fen
			y := FormatYuan(fen)
			fmt.Fprint(w, row("2026-11-25 10:00:00", "wx8888888888888888", testMch, "0", "", fmt.Sprintf("42%026d", i), fmt.Sprintf("BIG%010d", i),
				"o", "NATIVE", "SUCCESS", "OTHERS", "CNY", y, "0.00", "0", "0", "0.00", "0.00", "", "", "x", "", "0.00000", "0.60%", y, "0.00", "")+"\n")
		}
		fmt.Fprintf(w, "%s\n`%d,`%s,`0.00,`0.00,`0.00000,`%s,`0.00\n", summaryHeader, n, FormatYuan(total), FormatYuan(total))
		_ = zw.Close()
		_ = pw.Close()
	}()
	r, err := NewGzipReader(pr, Options{MchID: testMch})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		count++
	}
	if count != n || r.Summary().Rows != n {
		t.Fatalf("%d rows, summary %+v", count, r.Summary())
	}
}
