package activities

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
)

// QueryOrderInput names the order to ask WeChat about.
type QueryOrderInput struct {
	OutTradeNo string `json:"out_trade_no"`
}

// QueryOrderResult is WeChat's answer.
type QueryOrderResult struct {
	Trade payment.Trade `json:"trade"`
}

// QueryOrder asks WeChat's order-query API for the trade. Only WeChat's
// signed answer counts: a trade, or "no such order" (final). Everything
// else is a fault, counted and retried by Temporal with backoff (longer for
// rate limits), never decided on.
func (a *Activities) QueryOrder(ctx context.Context, in QueryOrderInput) (QueryOrderResult, error) {
	trade, err := a.WeChat.QueryOrder(ctx, in.OutTradeNo)
	switch {
	case err == nil:
		return QueryOrderResult{Trade: trade}, nil
	case errors.Is(err, wechatpay.ErrOrderNotExist):
		return QueryOrderResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("query %s: WeChat Pay has no such order", in.OutTradeNo), ErrTypeOrderNotExist, err)
	}
	a.wechatError("query", err)
	return QueryOrderResult{}, faultError(fmt.Errorf("query %s: %w", in.OutTradeNo, err))
}
