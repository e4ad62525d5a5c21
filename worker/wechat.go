package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// NewWeChat builds the WeChat Pay client for the configured API version:
// the order query, prepay and close that the activities call.
func NewWeChat(ctx context.Context, cfg config.Config) (activities.WeChat, error) {
	httpClient := &http.Client{Timeout: 10 * time.Second}
	switch cfg.APIVersion {
	case "v2":
		return &apiv2.Client{
			BaseURL: cfg.BaseURL, AppID: cfg.AppID, MchID: cfg.MchID, APIKey: cfg.APIKey.Reveal(),
			SignType: apiv2.SignTypeHMACSHA256, HTTP: httpClient,
		}, nil
	case "v3":
		var missing []error
		for _, v := range []struct{ name, value string }{
			{"WECHATPAY_MCH_PRIVATE_KEY_FILE", cfg.MchPrivateKeyFile},
			{"WECHATPAY_MCH_CERT_SERIAL", cfg.MchCertSerial},
		} {
			if v.value == "" {
				missing = append(missing, fmt.Errorf("%s is required when WECHATPAY_API_VERSION=v3", v.name))
			}
		}
		if cfg.PublicKeyFile == "" && cfg.PlatformCertDir == "" {
			missing = append(missing, errors.New("WECHATPAY_PUBLIC_KEY_FILE (or WECHATPAY_PLATFORM_CERT_DIR) is required when WECHATPAY_API_VERSION=v3"))
		}
		if err := errors.Join(missing...); err != nil {
			return nil, err
		}
		keys, err := apiv3.LoadKeys(cfg.PublicKeyFile, cfg.PublicKeyID, cfg.PlatformCertDir)
		if err != nil {
			return nil, fmt.Errorf("WeChat Pay keys: %w", err)
		}
		priv, err := utils.LoadPrivateKeyWithPath(cfg.MchPrivateKeyFile)
		if err != nil {
			// The SDK's error names the file, never its content.
			return nil, fmt.Errorf("WECHATPAY_MCH_PRIVATE_KEY_FILE: cannot load the merchant private key")
		}
		return apiv3.NewClient(ctx, apiv3.ClientConfig{
			BaseURL: cfg.BaseURL, AppID: cfg.AppID, MchID: cfg.MchID, MchCertSerial: cfg.MchCertSerial,
			MchPrivateKey: priv, Keys: keys, HTTP: httpClient,
		})
	}
	return nil, fmt.Errorf("WECHATPAY_API_VERSION must be v2 or v3, got %q", cfg.APIVersion)
}
