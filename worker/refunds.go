package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/internal/boot"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay/apiv3"
)

// NewRefundsAPI returns the WeChat client refunds use. Refunds are asked
// through API v3 whatever WECHATPAY_API_VERSION says (v2's refund needs
// mutual TLS): the order client itself when it is the v3 one, otherwise a
// v3 client of its own. It returns nil, and no error, when the v3
// credentials are not configured (cfg.RefundsConfigured says which are
// missing; the api answers POST …/refunds 501 then, and the refund
// activities refuse with activities.ErrTypeRefundsUnavailable). Credentials
// that are set but do not load are an error.
func NewRefundsAPI(ctx context.Context, cfg config.Config, orders activities.WeChat, logger *slog.Logger) (activities.RefundsAPI, error) {
	if c, ok := orders.(*apiv3.Client); ok && c != nil {
		return c, nil
	}
	if err := cfg.RefundsConfigured(); err != nil {
		if logger != nil {
			logger.Warn("refunds unavailable", "reason", err.Error())
		}
		return nil, nil
	}
	w, err := boot.LoadWeChat(cfg, time.Now)
	if err != nil {
		return nil, fmt.Errorf("refunds (API v3): %w", err)
	}
	c, err := w.V3Client(ctx, "for refunds")
	if err != nil {
		return nil, fmt.Errorf("refunds (API v3): %w", err)
	}
	return c, nil
}

// openRefundsCollector reports the refunds that are not final from
// PostgreSQL at each scrape of the worker's /metrics.
func openRefundsCollector(st *store.Store, mchID string) prometheus.Collector {
	return metrics.OpenRefundsCollector(func(ctx context.Context) (metrics.OpenRefunds, error) {
		s, err := st.OpenRefundStats(ctx, mchID)
		return metrics.OpenRefunds{Processing: s.Processing, Abnormal: s.Abnormal, OldestProcessing: s.OldestProcessing}, err
	}, time.Now)
}
