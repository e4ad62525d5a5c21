// Package config loads the processes' configuration from the environment,
// with the defaults fixed by the external contract.
package config

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Secret holds a key or other confidential value. Its String and
// MarshalText forms are masked, so a Secret printed by accident (slog,
// fmt, JSON) never shows its value; Reveal is the one way to read it.
type Secret struct{ v string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: s} }

// Reveal returns the secret value, for the code that signs or decrypts.
func (s Secret) Reveal() string { return s.v }

// Set reports whether a value is present.
func (s Secret) Set() bool { return s.v != "" }

func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return "[redacted]"
}

// MarshalText keeps secrets out of JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps secrets out of log/slog output.
func (s Secret) LogValue() string { return s.String() }

// Config is every setting of the api and the worker.
type Config struct {
	DatabaseURL       Secret // may carry a password
	TemporalAddress   string
	TemporalNamespace string
	TaskQueue         string
	APIAddr           string
	WorkerAddr        string // the worker's health and metrics listener

	AppID string
	MchID string

	APIKey            Secret // API v2 key
	APIv3Key          Secret
	PublicKeyFile     string
	PublicKeyID       string
	PlatformCertDir   string // extra WeChat Pay public keys and platform certificates (addition to the contract)
	MchPrivateKeyFile string
	MchCertSerial     string
	APIVersion        string // "v3" or "v2"
	BaseURL           string
	NotifyURL         string
	// InsecureSandbox (WECHATPAY_INSECURE_SANDBOX) accepts an http://
	// WECHATPAY_BASE_URL on a non-loopback host: a sandbox on a private
	// network, such as the dev compose profile's. Never for WeChat itself.
	InsecureSandbox bool

	OrderTimeout    time.Duration
	OrderQueryAfter time.Duration

	ReconcileInterval time.Duration // how often the reconciliation schedule runs (addition to the contract)
	ReconcileGrace    time.Duration // orders younger than this are left to the api that is creating them
}

// Load reads the configuration from the environment. getenv is os.Getenv in
// production and a map lookup in tests.
func Load(getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		DatabaseURL:       NewSecret(get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/payments?sslmode=disable")),
		TemporalAddress:   get("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
		TemporalNamespace: get("TEMPORAL_NAMESPACE", "default"),
		TaskQueue:         get("TEMPORAL_TASK_QUEUE", "payments"),
		APIAddr:           get("API_ADDR", "127.0.0.1:8080"),
		WorkerAddr:        get("WORKER_ADDR", "127.0.0.1:8081"),
		AppID:             get("WECHATPAY_APPID", ""),
		MchID:             get("WECHATPAY_MCHID", ""),
		APIKey:            NewSecret(get("WECHATPAY_API_KEY", "")),
		APIv3Key:          NewSecret(get("WECHATPAY_APIV3_KEY", "")),
		PublicKeyFile:     get("WECHATPAY_PUBLIC_KEY_FILE", ""),
		PublicKeyID:       get("WECHATPAY_PUBLIC_KEY_ID", ""),
		PlatformCertDir:   get("WECHATPAY_PLATFORM_CERT_DIR", ""),
		MchPrivateKeyFile: get("WECHATPAY_MCH_PRIVATE_KEY_FILE", ""),
		MchCertSerial:     get("WECHATPAY_MCH_CERT_SERIAL", ""),
		APIVersion:        get("WECHATPAY_API_VERSION", "v3"),
		BaseURL:           strings.TrimRight(get("WECHATPAY_BASE_URL", "https://api.mch.weixin.qq.com"), "/"),
		NotifyURL:         get("WECHATPAY_NOTIFY_URL", ""),
	}
	var errs []error
	var err error
	if s := get("WECHATPAY_INSECURE_SANDBOX", "false"); s != "" {
		if c.InsecureSandbox, err = strconv.ParseBool(s); err != nil {
			errs = append(errs, fmt.Errorf("WECHATPAY_INSECURE_SANDBOX: not a boolean: %q", s))
		}
	}
	if c.OrderTimeout, err = duration(get("ORDER_TIMEOUT", "30m")); err != nil {
		errs = append(errs, fmt.Errorf("ORDER_TIMEOUT: %w", err))
	}
	if c.OrderQueryAfter, err = duration(get("ORDER_QUERY_AFTER", "1m")); err != nil {
		errs = append(errs, fmt.Errorf("ORDER_QUERY_AFTER: %w", err))
	}
	if c.ReconcileInterval, err = duration(get("RECONCILE_INTERVAL", "5m")); err != nil {
		errs = append(errs, fmt.Errorf("RECONCILE_INTERVAL: %w", err))
	}
	if c.ReconcileGrace, err = duration(get("RECONCILE_GRACE", "1m")); err != nil {
		errs = append(errs, fmt.Errorf("RECONCILE_GRACE: %w", err))
	}
	if c.AppID == "" {
		errs = append(errs, errors.New("WECHATPAY_APPID is required"))
	}
	if c.MchID == "" {
		errs = append(errs, errors.New("WECHATPAY_MCHID is required"))
	}
	switch c.APIVersion {
	case "v2":
		if !c.APIKey.Set() {
			errs = append(errs, errors.New("WECHATPAY_API_KEY is required when WECHATPAY_API_VERSION=v2"))
		}
	case "v3":
		// v3 settings are checked where they are used: the worker needs
		// them for its calls, the api for v3 notifications.
	default:
		errs = append(errs, fmt.Errorf("WECHATPAY_API_VERSION must be v2 or v3, got %q", c.APIVersion))
	}
	if c.APIv3Key.Set() && len(c.APIv3Key.Reveal()) != 32 {
		errs = append(errs, errors.New("WECHATPAY_APIV3_KEY must be 32 bytes"))
	}
	return c, errors.Join(errs...)
}

func duration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, fmt.Errorf("must be positive, got %s", s)
	}
	return d, nil
}
