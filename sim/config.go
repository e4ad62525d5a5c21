package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
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
}

// Defaults of the optional settings.
const (
	DefaultAddr      = "127.0.0.1:8090"
	DefaultNotifyURL = "http://127.0.0.1:8080/wechatpay/notify"
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
	}
	var errs []error
	if s := get("SIM_TIME_SCALE", ""); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_TIME_SCALE: not a number: %q", s))
		}
		c.TimeScale = f
	}
	if s := get("SIM_QUERY_DELAY", ""); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("SIM_QUERY_DELAY: not a Go duration: %q", s))
		}
		c.QueryDelay = d
	}
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate reports what is missing or out of range.
func (c Config) Validate() error {
	var errs []error
	if c.AppID == "" {
		errs = append(errs, errors.New("WECHATPAY_APPID is required"))
	}
	if c.MchID == "" {
		errs = append(errs, errors.New("WECHATPAY_MCHID is required"))
	}
	if c.APIKey == "" {
		errs = append(errs, errors.New("WECHATPAY_API_KEY is required"))
	}
	if u, err := url.Parse(c.NotifyURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, errors.New("SIM_NOTIFY_URL must be an http(s) URL"))
	}
	if !(c.TimeScale >= 0) { // also rejects NaN
		errs = append(errs, errors.New("SIM_TIME_SCALE must be >= 0"))
	}
	if c.QueryDelay < 0 {
		errs = append(errs, errors.New("SIM_QUERY_DELAY must be >= 0"))
	}
	return errors.Join(errs...)
}

// LogValue keeps the API key out of logs.
func (c Config) LogValue() slog.Value {
	key := ""
	if c.APIKey != "" {
		key = "[redacted]"
	}
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("appid", c.AppID),
		slog.String("mch_id", c.MchID),
		slog.String("api_key", key),
		slog.String("notify_url", c.NotifyURL),
		slog.Float64("time_scale", c.TimeScale),
		slog.Duration("query_delay", c.QueryDelay),
	)
}

// String masks the API key, so printing a Config never shows it.
func (c Config) String() string { return c.LogValue().String() }

// GoString masks the API key under %#v too.
func (c Config) GoString() string { return c.String() }
