package worker

import (
	"context"
	"time"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/internal/boot"
)

// NewWeChat builds the WeChat Pay client for the configured API version:
// the order query, prepay and close that the activities call. The keys
// and the checks of WECHATPAY_BASE_URL are boot.LoadWeChat's, shared with
// the api.
func NewWeChat(ctx context.Context, cfg config.Config) (activities.WeChat, error) {
	w, err := boot.LoadWeChat(cfg, time.Now)
	if err != nil {
		return nil, err
	}
	return w.Client(ctx)
}
