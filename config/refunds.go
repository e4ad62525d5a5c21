package config

import (
	"errors"
	"fmt"
	"strings"
)

// loadRefunds reads the refund settings of the interface's additions:
// WECHATPAY_REFUND_NOTIFY_URL (default WECHATPAY_NOTIFY_URL, so Load sets
// NotifyURL first) and REFUND_QUERY_AFTER (default 1m).
func loadRefunds(c *Config, get func(key, def string) string) []error {
	var errs []error
	c.RefundNotifyURL = get("WECHATPAY_REFUND_NOTIFY_URL", c.NotifyURL)
	var err error
	if c.RefundQueryAfter, err = duration(get("REFUND_QUERY_AFTER", "1m")); err != nil {
		errs = append(errs, fmt.Errorf("REFUND_QUERY_AFTER: %w", err))
	}
	return errs
}

// RefundsConfigured reports whether refunds can be asked of WeChat: they go
// through API v3 whatever WECHATPAY_API_VERSION says (v2's refund needs the
// merchant certificate over mutual TLS, which this service does not do), so
// they need the v3 merchant credentials: WECHATPAY_MCH_PRIVATE_KEY_FILE,
// WECHATPAY_MCH_CERT_SERIAL and WECHATPAY_PUBLIC_KEY_FILE (or
// WECHATPAY_PLATFORM_CERT_DIR) to verify WeChat's answers. It returns nil
// when they are set, else an error naming what is missing, fit to show an
// operator (the api answers POST …/refunds 501 with it). Whether the files
// load is checked when the worker builds its client.
func (c Config) RefundsConfigured() error {
	var missing []string
	if c.MchPrivateKeyFile == "" {
		missing = append(missing, "WECHATPAY_MCH_PRIVATE_KEY_FILE")
	}
	if c.MchCertSerial == "" {
		missing = append(missing, "WECHATPAY_MCH_CERT_SERIAL")
	}
	if c.PublicKeyFile == "" && c.PlatformCertDir == "" {
		missing = append(missing, "WECHATPAY_PUBLIC_KEY_FILE (or WECHATPAY_PLATFORM_CERT_DIR)")
	}
	if len(missing) == 0 {
		return nil
	}
	return errors.New("refunds use WeChat Pay API v3, which needs " + strings.Join(missing, ", "))
}
