package activities

import (
	"context"
	"fmt"

	"github.com/payflow/payflow/payment"
)

// VerifyPaymentInput is what must agree before an order may become PAID:
// the notification (absent when the payment was found by query) and
// WeChat's queried trade.
type VerifyPaymentInput struct {
	OutTradeNo   string                `json:"out_trade_no"`
	Notification *payment.Notification `json:"notification,omitempty"`
	Trade        payment.Trade         `json:"trade"`
}

// VerifyPaymentResult says whether the order exists and what did not match.
type VerifyPaymentResult struct {
	OrderFound     bool           `json:"order_found"`
	OrderStatus    payment.Status `json:"order_status"`
	OrderAmountFen int64          `json:"order_amount_fen"`
	Mismatches     []string       `json:"mismatches,omitempty"`
}

// VerifyPayment compares WeChat's queried trade, the notification and our
// order: amount, currency, app id, merchant id and transaction id. It only
// reads, so it is safe to retry.
func (a *Activities) VerifyPayment(ctx context.Context, in VerifyPaymentInput) (VerifyPaymentResult, error) {
	order, err := a.Orders.OrderRow(ctx, in.OutTradeNo)
	if isNotFound(err) {
		return VerifyPaymentResult{OrderFound: false}, nil
	}
	if err != nil {
		return VerifyPaymentResult{}, fmt.Errorf("verify payment %s: %w", in.OutTradeNo, err)
	}
	res := VerifyPaymentResult{OrderFound: true, OrderStatus: order.Status, OrderAmountFen: order.AmountFen}
	res.Mismatches = mismatches(a.AppID, a.MchID, order, in.Trade, in.Notification)
	return res, nil
}

// mismatches lists, in a fixed order, every way the trade and the
// notification disagree with the order and the merchant's configuration.
func mismatches(appID, mchID string, order payment.Order, t payment.Trade, n *payment.Notification) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	currency := func(c string) string {
		if c == "" {
			return payment.DefaultCurrency
		}
		return c
	}
	if t.AmountFen != order.AmountFen {
		add("queried amount %d fen != order amount %d fen", t.AmountFen, order.AmountFen)
	}
	if currency(t.Currency) != currency(order.Currency) {
		add("queried currency %s != order currency %s", currency(t.Currency), currency(order.Currency))
	}
	if t.AppID != "" && t.AppID != appID {
		add("queried appid %s is not ours", t.AppID)
	}
	if t.MchID != "" && t.MchID != mchID {
		add("queried mch_id %s is not ours", t.MchID)
	}
	if t.OutTradeNo != "" && t.OutTradeNo != order.OutTradeNo {
		add("queried out_trade_no %s != %s", t.OutTradeNo, order.OutTradeNo)
	}
	if n == nil {
		return out
	}
	if n.AmountFen != order.AmountFen {
		add("notified amount %d fen != order amount %d fen", n.AmountFen, order.AmountFen)
	}
	if currency(n.Currency) != currency(order.Currency) {
		add("notified currency %s != order currency %s", currency(n.Currency), currency(order.Currency))
	}
	if n.AppID != appID {
		add("notified appid %s is not ours", n.AppID)
	}
	if n.MchID != mchID {
		add("notified mch_id %s is not ours", n.MchID)
	}
	if n.TransactionID != t.TransactionID {
		add("notified transaction %s != queried transaction %s", n.TransactionID, t.TransactionID)
	}
	return out
}
