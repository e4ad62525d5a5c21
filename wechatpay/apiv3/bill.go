package apiv3

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/payflow/payflow/wechatpay"
)

// v3 error codes of the bill API.
const (
	codeStatementCreating = "STATEMENT_CREATING"
	codeNoStatementExist  = "NO_STATEMENT_EXIST"
)

// maxBillDownload bounds a downloaded (compressed) bill.
const maxBillDownload = 2 << 30

// BillClient fetches WeChat's daily trade bill through API v3, in WeChat's
// two steps: GET /v3/bill/tradebill (signed, its answer verified like every
// API answer) returns the bill's SHA-1 and a short-lived download_url; a
// signed GET of that URL returns the gzip file, whose answer carries no
// Wechatpay signature. That second answer is not verified (the SDK's
// option.WithoutValidator, which the SDK's FAQ prescribes for bill
// downloads); the caller checks the SHA-1 of the uncompressed file
// instead. Only an https download_url, or one under the configured base
// URL (the sandbox), is ever followed.
type BillClient struct {
	base     *url.URL
	api      *core.Client // requests to base, every answer verified (errors too)
	download *core.Client // requests where download_url says, answers unverified
}

// NewBillClient builds the two SDK clients from the same configuration as
// NewClient. It makes no call.
func NewBillClient(ctx context.Context, cfg ClientConfig) (*BillClient, error) {
	s, err := newSetup(cfg, "v3 bill client")
	if err != nil {
		return nil, err
	}
	// tradebill is verified as the order calls are.
	api, err := s.verified(ctx, "v3 bill client", billCallTimeout)
	if err != nil {
		return nil, err
	}
	base, hc, next := s.base, s.hc, s.next
	c := &BillClient{base: base, api: api}
	// A bill of a busy day takes longer than an API call: the download is
	// bounded by its context, not by the client's timeout. Redirects are
	// followed only to where a download_url may point.
	dlHTTP := hc
	dlHTTP.Transport = next
	dlHTTP.Timeout = 0
	dlHTTP.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		return c.checkDownloadURL(req.URL)
	}
	c.download, err = core.NewClient(ctx,
		option.WithMerchantCredential(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey),
		option.WithoutValidator(),
		option.WithHTTPClient(&dlHTTP),
	)
	if err != nil {
		return nil, fmt.Errorf("wechatpay: v3 bill client: %w", err)
	}
	return c, nil
}

// tradeBill is tradebill's answer.
type tradeBill struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
}

// LocateBill asks WeChat for the day's ALL trade bill, gzip
// (GET /v3/bill/tradebill?bill_date=…&bill_type=ALL&tar_type=GZIP), and
// returns its hash and download link. A signed STATEMENT_CREATING is
// wechatpay.ErrBillNotReady, a signed NO_STATEMENT_EXIST wechatpay.ErrNoBill;
// an answer that is not WeChat's signed word is a *wechatpay.UnverifiedError
// (a fault: it never decides that a day has no bill). Other failures are
// classified like QueryOrder's; an answer without a usable link or hash
// wraps wechatpay.ErrBadAnswer.
func (c *BillClient) LocateBill(ctx context.Context, date string) (wechatpay.BillLink, error) {
	const op = "v3 tradebill"
	if _, err := wechatpay.BillDay(date); err != nil {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s: %w", op, err)
	}
	// Parameters in the order WeChat documents them (date checked above, so
	// nothing needs escaping); the signature covers the URI as sent.
	uri := DefaultBaseURL + "/v3/bill/tradebill?bill_date=" + date + "&bill_type=ALL&tar_type=GZIP"
	result, err := c.api.Get(ctx, uri)
	var sdkErr *core.APIError
	if errors.As(err, &sdkErr) { // signed: the transport verified it
		switch sdkErr.Code {
		case codeStatementCreating:
			return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: %s: %w", op, date, wechatpay.Truncate(sdkErr.Message, 100), wechatpay.ErrBillNotReady)
		case codeNoStatementExist:
			return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: %w", op, date, wechatpay.ErrNoBill)
		}
	}
	if err != nil {
		return wechatpay.BillLink{}, callError(op, "tradebill", date, result, err)
	}
	defer result.Response.Body.Close()
	body, err := io.ReadAll(result.Response.Body)
	if err != nil {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: read answer: %w", op, date, err)
	}
	var tb tradeBill
	if err := json.Unmarshal(body, &tb); err != nil {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: answer is not JSON: %w", op, date, wechatpay.ErrBadAnswer)
	}
	if tb.HashType != "SHA1" {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: hash_type %q is not SHA1: %w", op, date, wechatpay.Truncate(tb.HashType, 16), wechatpay.ErrBadAnswer)
	}
	if b, err := hex.DecodeString(tb.HashValue); err != nil || len(b) != 20 {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: hash_value %q is not a hex SHA-1: %w", op, date, wechatpay.Truncate(tb.HashValue, 48), wechatpay.ErrBadAnswer)
	}
	u, err := url.Parse(tb.DownloadURL)
	if err != nil || tb.DownloadURL == "" {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: download_url does not parse: %w", op, date, wechatpay.ErrBadAnswer)
	}
	if err := c.checkDownloadURL(u); err != nil {
		return wechatpay.BillLink{}, fmt.Errorf("wechatpay %s %s: %v: %w", op, date, err, wechatpay.ErrBadAnswer)
	}
	return wechatpay.BillLink{Date: date, HashType: tb.HashType, HashValue: strings.ToLower(tb.HashValue), DownloadURL: tb.DownloadURL}, nil
}

// OpenBill downloads the bill at link.DownloadURL with a signed GET and
// returns the gzip stream; the caller closes it. The answer carries no
// WeChat signature and is not verified: check the uncompressed file's SHA-1
// against link.HashValue. A refused link (4xx other than 401, which is our
// signature) is wechatpay.ErrBillLinkExpired: ask LocateBill again. 5xx and
// network errors are retryable.
func (c *BillClient) OpenBill(ctx context.Context, link wechatpay.BillLink) (io.ReadCloser, error) {
	const op = "v3 billdownload"
	u, err := url.Parse(link.DownloadURL)
	if err != nil || link.DownloadURL == "" {
		return nil, fmt.Errorf("wechatpay %s: download_url does not parse: %w", op, wechatpay.ErrMalformed)
	}
	if err := c.checkDownloadURL(u); err != nil {
		return nil, fmt.Errorf("wechatpay %s: %v: %w", op, err, wechatpay.ErrMalformed)
	}
	result, err := c.download.Get(ctx, link.DownloadURL)
	var sdkErr *core.APIError
	switch {
	case err == nil:
	case errors.As(err, &sdkErr):
		s := sdkErr.StatusCode
		if s >= 400 && s < 500 && s != http.StatusUnauthorized && s != http.StatusTooManyRequests {
			return nil, fmt.Errorf("wechatpay %s %s: HTTP %d %s: %w", op, link.Date, s, wechatpay.Truncate(sdkErr.Code, 64), wechatpay.ErrBillLinkExpired)
		}
		return nil, fmt.Errorf("billdownload %s: %w", link.Date, apiError(op, sdkErr))
	default:
		return nil, fmt.Errorf("wechatpay %s %s: %w", op, link.Date, err)
	}
	body := http.MaxBytesReader(nil, result.Response.Body, maxBillDownload)
	return body, nil
}

// checkDownloadURL allows https URLs, and URLs under the base URL (the
// sandbox on loopback answers download links under itself).
func (c *BillClient) checkDownloadURL(u *url.URL) error {
	if u.User != nil || u.Host == "" {
		return fmt.Errorf("download_url %q is not an absolute URL without credentials", wechatpay.Truncate(u.Redacted(), 100))
	}
	if u.Scheme == "https" {
		return nil
	}
	basePath := strings.TrimRight(c.base.Path, "/")
	if u.Scheme == c.base.Scheme && strings.EqualFold(u.Host, c.base.Host) &&
		(basePath == "" || u.Path == basePath || strings.HasPrefix(u.Path, basePath+"/")) {
		return nil
	}
	return fmt.Errorf("download_url %q is neither https nor under WECHATPAY_BASE_URL", wechatpay.Truncate(u.Redacted(), 100))
}
