package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the simulator's configuration.
type Config struct {
	Addr       string        // SIM_ADDR: listen address
	AppID      string        // WECHATPAY_APPID: the merchant's app id
	MchID      string        // WECHATPAY_MCHID: the merchant id
	APIKey     string        // WECHATPAY_API_KEY: API v2 key; never logged
	NotifyURL  string        // SIM_NOTIFY_URL: where notifications go
	TimeScale  float64       // SIM_TIME_SCALE: multiplies every retry delay
	QueryDelay time.Duration // SIM_QUERY_DELAY: pause before answering an order query

	// Refunds.
	RefundProcessing time.Duration // SIM_REFUND_PROCESSING: how long a refund stays PROCESSING (scaled by SIM_TIME_SCALE)
	RefundNotifyURL  string        // SIM_REFUND_NOTIFY_URL: where v2 refund notifications go (portal refunds); SIM_NOTIFY_URL when empty

	// API v3 and notification settings.
	KeysDir           string // SIM_KEYS_DIR: a directory written by GenerateKeys (wechatpay-sim keygen)
	APIv3Key          string // WECHATPAY_APIV3_KEY: overrides KeysDir/apiv3_key; never logged
	PlatformKey       string // SIM_PLATFORM_KEY: id or certificate serial of the identity that signs by default
	NotifyURLV3       string // SIM_NOTIFY_URL_V3: where v3 notifications go unless the trade's prepay named one
	NotifyVersion     string // SIM_NOTIFY_VERSION: v2 or v3, the format for trades not prepaid
	DropNotifications bool   // SIM_DROP_NOTIFICATIONS: /sim/pay sends no notification at all

	// The random fault model (see faults.go): each call and notification
	// gets a fault with probability FaultRate, drawn from a source seeded
	// with FaultSeed, printed at start so a run can be replayed.
	FaultRate  float64  // SIM_FAULTS: 0 (default) to 1
	FaultSeed  int64    // SIM_FAULT_SEED: 0 (default) seeds from the clock
	FaultCalls []string // SIM_FAULT_CALLS: comma-separated call names; all when empty
	FaultKinds []string // SIM_FAULT_KINDS: comma-separated kinds; all that fit a call when empty
}

// Defaults of the optional settings.
const (
	DefaultAddr      = "127.0.0.1:8090"
	DefaultNotifyURL = "http://127.0.0.1:8080/wechatpay/notify"

	DefaultNotifyURLV3   = "http://127.0.0.1:8080/wechatpay/v3/notify"
	DefaultNotifyVersion = "v2"

	DefaultRefundProcessing = 10 * time.Second
)

// LoadConfig reads the configuration from the environment through getenv
// (os.Getenv in production, a map lookup in tests).
func LoadConfig(getenv func(string) string) (Config, error) {
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		Addr:      get("SIM_ADDR", DefaultAddr),
		AppID:     get("WECHATPAY_APPID", ""),
		MchID:     get("WECHATPAY_MCHID", ""),
		APIKey:    get("WECHATPAY_API_KEY", ""),
		NotifyURL: get("SIM_NOTIFY_URL", DefaultNotifyURL),
		TimeScale: 1,

		KeysDir:       get("SIM_KEYS_DIR", ""),
		APIv3Key:      get("WECHATPAY_APIV3_KEY", ""),
		PlatformKey:   get("SIM_PLATFORM_KEY", ""),
		NotifyURLV3:   get("SIM_NOTIFY_URL_V3", DefaultNotifyURLV3),
		NotifyVersion: get("SIM_NOTIFY_VERSION", DefaultNotifyVersion),

		RefundProcessing: DefaultRefundProcessing,
		RefundNotifyURL:  get("SIM_REFUND_NOTIFY_URL", ""),
	}
	var errs []error
	if s := get("SIM_DROP_NOTIFICATIONS", ""); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_DROP_NOTIFICATIONS: not a boolean: %q", s))
		}
		c.DropNotifications = b
	}
	if s := get("SIM_TIME_SCALE", ""); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_TIME_SCALE: not a number: %q", s))
		}
		c.TimeScale = f
	}
	if s := get("SIM_FAULTS", ""); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_FAULTS: not a number: %q", s))
		}
		c.FaultRate = f
	}
	if s := get("SIM_FAULT_SEED", ""); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_FAULT_SEED: not an integer: %q", s))
		}
		c.FaultSeed = n
	}
	c.FaultCalls = list(get("SIM_FAULT_CALLS", ""))
	c.FaultKinds = list(get("SIM_FAULT_KINDS", ""))
	if s := get("SIM_QUERY_DELAY", ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_QUERY_DELAY: not a Go duration: %q", s))
		}
		c.QueryDelay = d
	}
	if s := get("SIM_REFUND_PROCESSING", ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_REFUND_PROCESSING: not a Go duration: %q", s))
		}
		c.RefundProcessing = d
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate reports what is missing or out of range. Whether the key
// directory holds what it should is checked when New loads it.
func (c Config) Validate() error {
	var errs []error
	if c.AppID == "" {
		errs = append(errs, errors.New("WECHATPAY_APPID is required"))
	}
	if c.MchID == "" {
		errs = append(errs, errors.New("WECHATPAY_MCHID is required"))
	}
	if c.APIKey == "" && c.KeysDir == "" {
		errs = append(errs, errors.New("WECHATPAY_API_KEY is required (or SIM_KEYS_DIR with an api_key file)"))
	}
	if !httpURL(c.NotifyURL) {
		errs = append(errs, errors.New("SIM_NOTIFY_URL must be an http(s) URL"))
	}
	if c.NotifyURLV3 != "" && !httpURL(c.NotifyURLV3) {
		errs = append(errs, errors.New("SIM_NOTIFY_URL_V3 must be an http(s) URL"))
	}
	if c.APIv3Key != "" && len(c.APIv3Key) != 32 {
		errs = append(errs, fmt.Errorf("WECHATPAY_APIV3_KEY must be 32 bytes, not %d", len(c.APIv3Key)))
	}
	switch c.NotifyVersion {
	case "", "v2", "v3":
	default:
		errs = append(errs, errors.New("SIM_NOTIFY_VERSION must be v2 or v3"))
	}
	if !(c.TimeScale >= 0) { // also rejects NaN
		errs = append(errs, errors.New("SIM_TIME_SCALE must be >= 0"))
	}
	if c.RefundProcessing < 0 {
		errs = append(errs, errors.New("SIM_REFUND_PROCESSING must be >= 0"))
	}
	if c.RefundNotifyURL != "" && !httpURL(c.RefundNotifyURL) {
		errs = append(errs, errors.New("SIM_REFUND_NOTIFY_URL must be an http(s) URL"))
	}
	if c.QueryDelay < 0 {
		errs = append(errs, errors.New("SIM_QUERY_DELAY must be >= 0"))
	}
	if !(c.FaultRate >= 0 && c.FaultRate <= 1) {
		errs = append(errs, errors.New("SIM_FAULTS must be a rate from 0 to 1"))
	}
	all := slices.Concat(apiKinds, notifyKinds)
	for _, k := range c.FaultKinds {
		if !slices.Contains(all, k) {
			errs = append(errs, fmt.Errorf("SIM_FAULT_KINDS: %q is none of %s", k, strings.Join(all, ", ")))
		}
	}
	return errors.Join(errs...)
}

// list splits a comma-separated setting, dropping empty items.
func list(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// httpURL reports whether s is an absolute http(s) URL.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// LogValue keeps the API keys out of logs.
func (c Config) LogValue() slog.Value {
	redact := func(s string) string {
		if s != "" {
			return "[redacted]"
		}
		return ""
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("appid", c.AppID),
		slog.String("mch_id", c.MchID),
		slog.String("api_key", redact(c.APIKey)),
		slog.String("notify_url", c.NotifyURL),
		slog.Float64("time_scale", c.TimeScale),
		slog.Duration("query_delay", c.QueryDelay),
		slog.Duration("refund_processing", c.RefundProcessing),
		slog.String("refund_notify_url", c.RefundNotifyURL),
		slog.String("keys_dir", c.KeysDir),
		slog.String("apiv3_key", redact(c.APIv3Key)),
		slog.String("platform_key", c.PlatformKey),
		slog.String("notify_url_v3", c.NotifyURLV3),
		slog.String("notify_version", c.NotifyVersion),
		slog.Bool("drop_notifications", c.DropNotifications),
		slog.Float64("fault_rate", c.FaultRate),
		slog.Int64("fault_seed", c.FaultSeed),
		slog.String("fault_calls", strings.Join(c.FaultCalls, ",")),
		slog.String("fault_kinds", strings.Join(c.FaultKinds, ",")),
	)
}

// String masks the API keys, so printing a Config never shows it.
func (c Config) String() string { return c.LogValue().String() }

// GoString masks the API keys under %#v too.
func (c Config) GoString() string { return c.String() }
