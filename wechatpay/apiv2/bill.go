package apiv2

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/payflow/payflow/wechatpay"
)

// maxBillDownload bounds a downloaded (compressed) bill.
const maxBillDownload = 2 << 30

// v2 downloadbill's return_msg values this file classifies (WeChat writes
// "No Bill Exist" although its documentation says "NO Bill Exist").
const (
	msgNoBillExist  = "no bill exist"
	msgBillCreating = "bill creating"
)

// LocateBill is the first of the two bill steps of API v3; API v2 has
// nothing to ask before the download, so it only checks the date.
func (c *Client) LocateBill(_ context.Context, date string) (wechatpay.BillLink, error) {
	if _, err := wechatpay.BillDay(date); err != nil {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay downloadbill: %w", err)
	}
	return wechatpay.BillLink{Date: date}, nil
}

// OpenBill downloads the day's ALL trade bill, gzip (POST /pay/downloadbill
// with bill_date=YYYYMMDD, bill_type=ALL, tar_type=GZIP, signed with the API
// key) and returns the gzip stream; the caller closes it. Success is the
// file itself, with no hash to check it against; failure is XML with
// return_code FAIL, which WeChat never signs: "No Bill Exist" is
// wechatpay.ErrNoBill and "Bill Creating" wechatpay.ErrBillNotReady (the
// only words API v2 has for them), anything else a retryable
// *wechatpay.APIError (SIGNERROR a configuration fault). An answer that is
// neither gzip nor XML wraps wechatpay.ErrBadAnswer.
// Use a client whose HTTP timeout allows for a large file.
func (c *Client) OpenBill(ctx context.Context, link wechatpay.BillLink) (io.ReadCloser, error) {
	const op = "downloadbill"
	day, err := wechatpay.BillDay(link.Date)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	hresp, err := c.send(ctx, op, op+" "+link.Date, "/pay/downloadbill", map[string]string{
		"bill_date": day.Format("20060102"),
		"bill_type": "ALL",
		"tar_type":  "GZIP",
	})
	if err != nil {
		return nil, err
	}
	if s := hresp.StatusCode; s != http.StatusOK {
		hresp.Body.Close()
		return nil, &wechatpay.APIError{Op: op, HTTPStatus: s, Code: wechatpay.CodeHTTP, Message: http.StatusText(s),
			Retryable: s >= 500 || s == http.StatusTooManyRequests || s == http.StatusRequestTimeout}
	}
	body := bufio.NewReader(http.MaxBytesReader(nil, hresp.Body, maxBillDownload))
	magic, err := body.Peek(2)
	if err == nil && magic[0] == 0x1f && magic[1] == 0x8b { // gzip: the bill itself
		return readCloser{Reader: body, Closer: hresp.Body}, nil
	}
	defer hresp.Body.Close()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("wechatpay %s %s: read answer: %w", op, link.Date, err)
	}
	raw, err := io.ReadAll(io.LimitReader(body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s %s: read answer: %w", op, link.Date, err)
	}
	if len(raw) > maxResponse {
		return nil, fmt.Errorf("wechatpay %s %s: an answer that is neither gzip nor a short XML: %w", op, link.Date, wechatpay.ErrBadAnswer)
	}
	resp, err := DecodeXML(raw)
	if err != nil {
		return nil, fmt.Errorf("wechatpay %s %s: an answer that is neither gzip nor XML: %w: %v", op, link.Date, wechatpay.ErrBadAnswer, err)
	}
	msg := resp["return_msg"]
	if resp["return_code"] != "FAIL" {
		return nil, fmt.Errorf("wechatpay %s %s: XML answer with return_code %q instead of the bill: %w",
			op, link.Date, wechatpay.Truncate(resp["return_code"], 16), wechatpay.ErrBadAnswer)
	}
	switch lower := strings.ToLower(strings.TrimSpace(msg)); {
	case lower == msgNoBillExist:
		return nil, fmt.Errorf("wechatpay %s %s: %s: %w", op, link.Date, msg, wechatpay.ErrNoBill)
	case lower == msgBillCreating:
		return nil, fmt.Errorf("wechatpay %s %s: %s: %w", op, link.Date, msg, wechatpay.ErrBillNotReady)
	}
	// Any other return_code FAIL is unsigned and decides nothing: asked
	// again, as the other v2 calls do.
	code := wechatpay.CodeFail
	switch lower := strings.ToLower(msg); {
	case msg == "签名错误" || strings.Contains(strings.ToUpper(msg), "SIGN"):
		code = wechatpay.CodeSignError
	case wechatpay.RetryableCode(msg) || lower == "system error" || strings.Contains(lower, "gzip error"):
		code = wechatpay.CodeSystemError
	}
	return nil, &wechatpay.APIError{Op: op, HTTPStatus: http.StatusOK, Code: code, Message: wechatpay.Truncate(msg, 256), Retryable: true}
}

// readCloser reads from a buffered reader and closes the body under it.
type readCloser struct {
	io.Reader
	io.Closer
}
