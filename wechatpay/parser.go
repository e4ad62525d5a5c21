package wechatpay

import (
	"net/http"

	"github.com/payflow/payflow/payment"
)

// NotificationParser turns one notification as received (headers and the
// exact body bytes) into a verified payment.Notification, or rejects it.
// It checks everything the message itself can prove: the signature (or,
// for a v2 refund, that req_info decrypts under our key), the merchant ids
// (ErrForeign) and the format. Errors wrap the sentinels of this package
// (ErrMalformed, ErrMissingSign, ErrBadSignature, ErrUnsupportedSignType,
// ErrStaleTimestamp, ErrProbe, ErrUnknownKey, ErrDecrypt, ErrForeign), so
// that a caller maps them to an answer in one table. ReceivedAt is left for
// the caller. Implementations are safe for concurrent use:
// apiv2.NotifyParser and apiv3.NotifyParser.
type NotificationParser interface {
	Parse(h http.Header, body []byte) (payment.Notification, error)
}
