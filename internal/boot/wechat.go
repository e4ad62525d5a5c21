package boot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// WeChat is everything WeChat Pay a process needs, built once from the
// configuration: the WeChat Pay keys, the notification parsers of both API
// versions, and (on demand) the client of the configured version. The api
// and the worker both build it with LoadWeChat.
type WeChat struct {
	cfg config.Config

	// Keys verify v3 notifications and v3 answers; nil when neither
	// WECHATPAY_PUBLIC_KEY_FILE nor WECHATPAY_PLATFORM_CERT_DIR is set.
	Keys *apiv3.Keys
	// V2 parses notifications at /wechatpay/notify; nil without
	// WECHATPAY_API_KEY.
	V2 *apiv2.NotifyParser
	// V3 parses notifications at /wechatpay/v3/notify; nil without
	// WECHATPAY_APIV3_KEY or Keys.
	V3 *apiv3.NotifyParser
}

// Client is what the worker calls WeChat Pay for; *apiv2.Client and
// *apiv3.Client both are one.
type Client interface {
	QueryOrder(ctx context.Context, outTradeNo string) (payment.Trade, error)
	Prepay(ctx context.Context, req payment.PrepayRequest) (payment.Prepay, error)
	CloseOrder(ctx context.Context, outTradeNo string) error
}

// LoadWeChat checks WECHATPAY_BASE_URL (CheckBaseURL), loads the WeChat Pay
// keys and builds the notification parsers that the configuration allows;
// now is the clock of the v3 timestamp window (time.Now when nil). Errors
// name the setting at fault and never a secret.
func LoadWeChat(cfg config.Config, now func() time.Time) (*WeChat, error) {
	if err := CheckBaseURL(cfg.BaseURL, cfg.InsecureSandbox); err != nil {
		return nil, err
	}
	w := &WeChat{cfg: cfg}
	if cfg.PublicKeyFile != "" || cfg.PlatformCertDir != "" {
		keys, err := apiv3.LoadKeys(cfg.PublicKeyFile, cfg.PublicKeyID, cfg.PlatformCertDir)
		if err != nil {
			return nil, fmt.Errorf("WeChat Pay keys: %w", err)
		}
		w.Keys = keys
	}
	if cfg.APIKey.Set() {
		p, err := apiv2.NewNotifyParser(cfg.AppID, cfg.MchID, cfg.APIKey.Reveal())
		if err != nil {
			return nil, errors.New("WECHATPAY_APPID, WECHATPAY_MCHID and WECHATPAY_API_KEY: v2 notifications cannot be verified")
		}
		w.V2 = p
	}
	if cfg.APIv3Key.Set() && w.Keys != nil {
		p, err := apiv3.NewNotifyParser(apiv3.ParserConfig{AppID: cfg.AppID, MchID: cfg.MchID,
			APIv3Key: cfg.APIv3Key.Reveal(), Keys: w.Keys, Now: now})
		if err != nil {
			return nil, errors.New("WECHATPAY_APIV3_KEY: not usable (32 bytes, with WECHATPAY_APPID and WECHATPAY_MCHID)")
		}
		w.V3 = p
	}
	return w, nil
}

// clientTimeout bounds one call to WeChat Pay.
const clientTimeout = 10 * time.Second

// Client builds the client of WECHATPAY_API_VERSION: v2 signs with
// HMAC-SHA256 under WECHATPAY_API_KEY; v3 signs with the merchant key
// (WECHATPAY_MCH_PRIVATE_KEY_FILE, WECHATPAY_MCH_CERT_SERIAL) and verifies
// every answer with Keys. Both time a call out after 10 s.
func (w *WeChat) Client(ctx context.Context) (Client, error) {
	cfg := w.cfg
	httpClient := &http.Client{Timeout: clientTimeout}
	switch cfg.APIVersion {
	case "v2":
		if !cfg.APIKey.Set() {
			return nil, errors.New("WECHATPAY_API_KEY is required when WECHATPAY_API_VERSION=v2")
		}
		return &apiv2.Client{
			BaseURL: cfg.BaseURL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey,
			SignType: apiv2.SignTypeHMACSHA256, HTTP: httpClient,
		}, nil
	case "v3":
		return w.V3Client(ctx, "when WECHATPAY_API_VERSION=v3")
	}
	return nil, fmt.Errorf("WECHATPAY_API_VERSION must be v2 or v3, got %q", cfg.APIVersion)
}

// V3Client builds the API v3 client from the merchant's credentials: the
// order client under WECHATPAY_API_VERSION=v3, and the refunds' client
// whatever the version (v2's refund needs mutual TLS). why completes the
// message naming a missing setting.
func (w *WeChat) V3Client(ctx context.Context, why string) (*apiv3.Client, error) {
	cfg := w.cfg
	var missing []error
	for _, v := range []struct{ name, value string }{
		{"WECHATPAY_MCH_PRIVATE_KEY_FILE", cfg.MchPrivateKeyFile},
		{"WECHATPAY_MCH_CERT_SERIAL", cfg.MchCertSerial},
	} {
		if v.value == "" {
			missing = append(missing, fmt.Errorf("%s is required %s", v.name, why))
		}
	}
	if w.Keys == nil {
		missing = append(missing, fmt.Errorf("WECHATPAY_PUBLIC_KEY_FILE (or WECHATPAY_PLATFORM_CERT_DIR) is required %s", why))
	}
	if err := errors.Join(missing...); err != nil {
		return nil, err
	}
	priv, err := utils.LoadPrivateKeyWithPath(cfg.MchPrivateKeyFile)
	if err != nil {
		// The SDK's error names the file, never its content.
		return nil, errors.New("WECHATPAY_MCH_PRIVATE_KEY_FILE: cannot load the merchant private key")
	}
	return apiv3.NewClient(ctx, apiv3.ClientConfig{
		BaseURL: cfg.BaseURL, AppID: cfg.AppID, MchID: cfg.MchID, MchCertSerial: cfg.MchCertSerial,
		MchPrivateKey: priv, Keys: w.Keys, HTTP: &http.Client{Timeout: clientTimeout},
	})
}

// Parsers returns the configured notification parsers as the interface
// the api takes; a nil parser is a nil interface (not configured).
func (w *WeChat) Parsers() (v2, v3 wechatpay.NotificationParser) {
	if w.V2 != nil {
		v2 = w.V2
	}
	if w.V3 != nil {
		v3 = w.V3
	}
	return v2, v3
}

// CheckBaseURL accepts an https:// WECHATPAY_BASE_URL, and http:// only
// for a loopback host (127.0.0.0/8, ::1, localhost: the local sandbox), or
// for any host when insecureSandbox (WECHATPAY_INSECURE_SANDBOX, a sandbox
// on a private network such as the dev compose profile). WeChat's own API
// is https; a production URL in clear text would let anyone on the path
// read and forge every answer.
func CheckBaseURL(raw string, insecureSandbox bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("WECHATPAY_BASE_URL must be an https:// URL, got %q", wechatpay.Truncate(redactURL(raw), 100))
	}
	if u.Scheme == "https" || insecureSandbox || loopbackHost(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("WECHATPAY_BASE_URL must be https (http:// is accepted only for a sandbox on a loopback address: "+
		"127.0.0.0/8, ::1, localhost; or with WECHATPAY_INSECURE_SANDBOX=true), got %s", u.Redacted())
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactURL hides a password in a URL that may not parse.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	if i := strings.Index(raw, "@"); i >= 0 {
		return "…" + raw[i:]
	}
	return raw
}
