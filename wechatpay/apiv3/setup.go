package apiv3

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/validators"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"github.com/payflow/payflow/wechatpay"
)

// Bounds of an API call when the caller's http.Client has none: the order
// calls stay well inside the activities' and the api's own waits; a bill's
// tradebill may take longer (its download is bounded by its context).
const (
	orderCallTimeout = 10 * time.Second
	billCallTimeout  = 15 * time.Second
)

// setup is what every SDK client of ours is built from: the configuration
// checked, the base URL parsed, and the caller's http.Client copied (so
// its transport stays the caller's).
type setup struct {
	cfg  ClientConfig
	base *url.URL
	hc   http.Client
	next http.RoundTripper // the transport requests finally go through
	now  func() time.Time
}

// newSetup checks cfg for a client named what ("v3 client", "v3 bill
// client"). It makes no call.
func newSetup(cfg ClientConfig, what string) (setup, error) {
	switch {
	case cfg.MchID == "":
		return setup{}, fmt.Errorf("wechatpay: %s: no mchid", what)
	case cfg.MchCertSerial == "":
		return setup{}, fmt.Errorf("wechatpay: %s: no merchant certificate serial", what)
	case cfg.MchPrivateKey == nil:
		return setup{}, fmt.Errorf("wechatpay: %s: no merchant private key", what)
	case cfg.Keys == nil:
		return setup{}, fmt.Errorf("wechatpay: %s: no WeChat Pay keys to verify answers", what)
	}
	raw := cfg.BaseURL
	if raw == "" {
		raw = DefaultBaseURL
	}
	base, err := url.Parse(raw)
	if err != nil {
		return setup{}, fmt.Errorf("wechatpay: %s: base URL does not parse", what)
	}
	if (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.User != nil || base.RawQuery != "" || base.Fragment != "" {
		return setup{}, fmt.Errorf("wechatpay: %s: base URL %q is not http(s)://host[/path]", what, wechatpay.Truncate(base.Redacted(), 100))
	}
	s := setup{cfg: cfg, base: base, now: cfg.Now}
	if cfg.HTTP != nil {
		s.hc = *cfg.HTTP
	}
	s.next = s.hc.Transport
	if s.next == nil {
		s.next = http.DefaultTransport
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// verified is an SDK client whose requests go to the base URL and whose
// every answer, an error answer too, must carry WeChat's valid signature;
// timeout applies when the caller's http.Client has none.
func (s setup) verified(ctx context.Context, what string, timeout time.Duration) (*core.Client, error) {
	hc := s.hc
	hc.Transport = &baseURLTransport{base: s.base, next: s.next, keys: s.cfg.Keys, now: s.now}
	if hc.Timeout == 0 {
		hc.Timeout = timeout
	}
	c, err := core.NewClient(ctx,
		option.WithMerchantCredential(s.cfg.MchID, s.cfg.MchCertSerial, s.cfg.MchPrivateKey),
		validatorOption{responseValidator{validators.NewWechatPayResponseValidator(s.cfg.Keys.Verifier())}},
		option.WithHTTPClient(&hc),
	)
	if err != nil {
		return nil, fmt.Errorf("wechatpay: %s: %w", what, err)
	}
	return c, nil
}
