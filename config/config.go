// Package config loads the processes' configuration from the environment,
// with the defaults docs/interface.md fixes.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Secret holds a key, token or other confidential value. Every printed
// form of it is masked: fmt under any verb (%v, %+v, %#v, %s, %q, %x...),
// log/slog (LogValue), JSON and text encodings (MarshalText). The value
// sits behind a pointer, so even a Secret in an unexported struct field,
// which fmt prints by reflection without calling its methods, shows an
// address rather than the value. Reveal is the one way to read it.
type Secret struct{ v *string }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{v: &s} }

// Reveal returns the secret value, for the code that signs, decrypts or
// compares.
func (s Secret) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// Set reports whether a value is present.
func (s Secret) Set() bool { return s.Reveal() != "" }

// redacted is what every printed form of a set Secret shows.
const redacted = "[redacted]"

// String is the masked form: "[redacted]", or "" when no value is set.
func (s Secret) String() string {
	if !s.Set() {
		return ""
	}
	return redacted
}

// GoString keeps %#v masked too.
func (s Secret) GoString() string { return "config.Secret(" + strconv.Quote(s.String()) + ")" }

// Format masks the secret under every fmt verb, flags and width included.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, s.GoString())
		return
	}
	_, _ = io.WriteString(f, s.String())
}

// MarshalText keeps secrets out of JSON and text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue keeps secrets out of log/slog output (slog.LogValuer).
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

var (
	_ fmt.Formatter          = Secret{}
	_ fmt.Stringer           = Secret{}
	_ fmt.GoStringer         = Secret{}
	_ slog.LogValuer         = Secret{}
	_ encoding.TextMarshaler = Secret{}
)

// Config is every setting of the api and the worker.
type Config struct {
	DatabaseURL       Secret // may carry a password
	TemporalAddress   string
	TemporalNamespace string
	TaskQueue         string
	APIAddr           string
	WorkerAddr        string   // the worker's health and metrics listener
	APITokens         []Secret // API_TOKENS: bearer tokens of the order API; none = open on loopback only

	AppID string
	MchID string

	APIKey            Secret // API v2 key
	APIv3Key          Secret
	PublicKeyFile     string
	PublicKeyID       string
	PlatformCertDir   string // extra WeChat Pay public keys and platform certificates (an addition to the interface)
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

	RefundNotifyURL  string        // WECHATPAY_REFUND_NOTIFY_URL: the notify_url of refund requests
	RefundQueryAfter time.Duration // REFUND_QUERY_AFTER: with no refund notification this long after acceptance, query

	ReconcileInterval time.Duration // how often the reconciliation schedule runs (an addition to the interface)
	ReconcileGrace    time.Duration // orders younger than this are left to the api that is creating them

	BillReconcileAt  DailyTime     // BILL_RECONCILE_AT: when the previous day is reconciled against WeChat's bill
	BillPollInterval time.Duration // BILL_POLL_INTERVAL: while WeChat makes the bill, ask again this often (an addition to docs/interface.md)

	// NotifyMaxInFlight (NOTIFY_MAX_IN_FLIGHT) bounds the notifications an
	// api hands over at once; more are answered 503 (WeChat retries). 0 is
	// no bound.
	NotifyMaxInFlight int
	// NotifyShedBacklog (NOTIFY_SHED_BACKLOG): while more notifications
	// than this, handed to workflows, wait unexamined for more than a few
	// seconds, an api answers new ones 503 (WeChat retries); 0 never.
	NotifyShedBacklog int

	// Worker concurrency (bin/worker): how many workflow tasks (each runs
	// its payment's short steps as local activities) and local activities
	// run at once, and how many pollers take workflow tasks. 0 leaves the
	// Temporal SDK's default (1000, 1000, 2).
	WorkerWorkflowTasks   int           // WORKER_MAX_WORKFLOW_TASKS
	WorkerLocalActivities int           // WORKER_MAX_LOCAL_ACTIVITIES
	WorkerWorkflowPollers int           // WORKER_WORKFLOW_POLLERS (not 1; default DefaultWorkerWorkflowPollers)
	WorkerStickyTimeout   time.Duration // WORKER_STICKY_TIMEOUT: a task for a cached run waits this long for this worker, then goes to any (default DefaultWorkerStickyTimeout)
}

// DefaultWorkerStickyTimeout is WORKER_STICKY_TIMEOUT's default, six times
// the SDK's 5 s. Under a load above what the worker can take, the next
// task of a run it has cached waits in its sticky queue longer than 5 s;
// the server then hands it to the normal queue, where it is taken with the
// run's whole history and replayed: more work per payment exactly when
// there is too much, and PAID/s fell to 0.2–0.5 of the saturation rate
// (docs/benchmarks.md, "Overload"). The cost: tasks of a worker killed
// without a clean stop wait up to this long before another worker takes
// them (a clean stop hands them over at once).
const DefaultWorkerStickyTimeout = 30 * time.Second

// DefaultWorkerWorkflowPollers is WORKER_WORKFLOW_POLLERS's default: the
// SDK's 2 pollers share one another between the sticky and the normal
// queue, and the overload runs were faster with 8 (docs/benchmarks.md).
const DefaultWorkerWorkflowPollers = 8

// DefaultNotifyMaxInFlight is NOTIFY_MAX_IN_FLIGHT's default: far above
// what a healthy Temporal needs (a hand-over takes tens of milliseconds,
// so 32 at once is hundreds per second), low enough that an overloaded one
// is not asked for more while every hand-over in flight misses its
// deadline.
const DefaultNotifyMaxInFlight = 32

// DefaultNotifyShedBacklog is NOTIFY_SHED_BACKLOG's default: at the
// saturation rate a payment is examined within a second, so 50 waiting
// longer means the workers are behind by more than they catch up on in a
// few seconds, while a handful of stuck orders never stop notifications.
const DefaultNotifyShedBacklog = 50

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
	if c.APITokens, err = parseTokens(getenv("API_TOKENS")); err != nil {
		errs = append(errs, fmt.Errorf("API_TOKENS: %w", err))
	}
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
	if c.NotifyMaxInFlight, err = count(get("NOTIFY_MAX_IN_FLIGHT", strconv.Itoa(DefaultNotifyMaxInFlight))); err != nil {
		errs = append(errs, fmt.Errorf("NOTIFY_MAX_IN_FLIGHT: %w", err))
	}
	if c.NotifyShedBacklog, err = count(get("NOTIFY_SHED_BACKLOG", strconv.Itoa(DefaultNotifyShedBacklog))); err != nil {
		errs = append(errs, fmt.Errorf("NOTIFY_SHED_BACKLOG: %w", err))
	}
	for _, w := range []struct {
		key string
		v   *int
		def int
	}{
		{"WORKER_MAX_WORKFLOW_TASKS", &c.WorkerWorkflowTasks, 0},
		{"WORKER_MAX_LOCAL_ACTIVITIES", &c.WorkerLocalActivities, 0},
		{"WORKER_WORKFLOW_POLLERS", &c.WorkerWorkflowPollers, DefaultWorkerWorkflowPollers},
	} {
		if *w.v, err = count(get(w.key, strconv.Itoa(w.def))); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", w.key, err))
		} else if *w.v == 1 {
			errs = append(errs, fmt.Errorf("%s: 1 is not allowed by the Temporal SDK (0 for its default, or 2 and more)", w.key))
		}
	}
	if c.WorkerStickyTimeout, err = duration(get("WORKER_STICKY_TIMEOUT", DefaultWorkerStickyTimeout.String())); err != nil {
		errs = append(errs, fmt.Errorf("WORKER_STICKY_TIMEOUT: %w", err))
	}
	errs = append(errs, loadRefunds(&c, get)...)
	if c.BillReconcileAt, err = ParseDailyTime(get("BILL_RECONCILE_AT", "10:30")); err != nil {
		errs = append(errs, fmt.Errorf("BILL_RECONCILE_AT: %w", err))
	}
	if c.BillPollInterval, err = duration(get("BILL_POLL_INTERVAL", "30m")); err != nil {
		errs = append(errs, fmt.Errorf("BILL_POLL_INTERVAL: %w", err))
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

// MinTokenLength is the shortest bearer token API_TOKENS accepts: 16
// characters, so a guessable word is refused (`make run` makes 64 hex).
const MinTokenLength = 16

// parseTokens splits API_TOKENS at commas. Blanks around a token and empty
// entries ("a,,b", a trailing comma) are ignored; an empty list means
// unset. Each token must be at least MinTokenLength characters of the
// RFC 6750 token alphabet (letters, digits, - . _ ~ + / and trailing =),
// so that it can travel in an Authorization header as it is. Errors name
// the token by its position, never by its value.
func parseTokens(s string) ([]Secret, error) {
	var tokens []Secret
	var errs []error
	n := 0
	for _, part := range strings.Split(s, ",") {
		tok := strings.TrimSpace(part)
		if tok == "" {
			continue
		}
		n++
		switch {
		case len(tok) < MinTokenLength:
			errs = append(errs, fmt.Errorf("token %d is shorter than %d characters", n, MinTokenLength))
		case !isBearerToken(tok):
			errs = append(errs, fmt.Errorf("token %d has characters other than A-Z a-z 0-9 - . _ ~ + / and trailing =", n))
		default:
			tokens = append(tokens, NewSecret(tok))
		}
	}
	return tokens, errors.Join(errs...)
}

// isBearerToken reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isBearerToken(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, r := range body {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._~+/", r):
		default:
			return false
		}
	}
	return true
}

// CheckAPIAccess is the order API's fail-closed rule, checked by bin/api
// before it connects to anything: without API_TOKENS it may listen only on
// a loopback address (127.0.0.0/8, ::1, localhost), so an order API is
// never exposed by accident. ":8080" and "0.0.0.0:8080" listen on every
// interface and are refused like any other address.
func (c Config) CheckAPIAccess() error {
	if len(c.APITokens) > 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(c.APIAddr)
	if err != nil {
		return fmt.Errorf("API_ADDR %q: %w", c.APIAddr, err)
	}
	if IsLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("API_TOKENS is not set and API_ADDR %s is not a loopback address: "+
		"the order API would be open to anyone who can reach it. Set API_TOKENS (comma-separated bearer tokens) "+
		"or bind API_ADDR to 127.0.0.1, ::1 or localhost", c.APIAddr)
}

// IsLoopbackHost reports whether host (as in host:port, without brackets)
// is "localhost" or a loopback IP address. An empty host means every
// interface and is not loopback.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// count parses a whole number >= 0.
func count(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("must be a whole number >= 0, got %q", s)
	}
	return n, nil
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
