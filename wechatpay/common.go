package wechatpay

import (
	"fmt"
	"net"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
)

// Beijing is WeChat Pay's time zone (UTC+8, no daylight saving); a fixed
// zone avoids depending on tzdata.
var Beijing = time.FixedZone("CST", 8*3600)

// Truncate shortens attacker-controlled text quoted in error messages.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ParseFen parses an amount in fen: ASCII digits only (no sign, no
// decimal point), greater than zero.
func ParseFen(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, fmt.Errorf("not an amount in fen: %q", Truncate(s, 24))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not an amount in fen: %q", Truncate(s, 24))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("not a positive amount in fen: %q", s)
	}
	return v, nil
}

// CheckPrepayRequest rejects what WeChat would refuse anyway, with an error
// wrapping ErrMalformed. maxDesc bounds the description in bytes, or in
// characters when descRunes.
func CheckPrepayRequest(req payment.PrepayRequest, maxDesc int, descRunes bool) error {
	switch {
	case !payment.ValidOutTradeNo(req.OutTradeNo):
		return fmt.Errorf("invalid out_trade_no %q: %w", Truncate(req.OutTradeNo, 40), ErrMalformed)
	case req.AmountFen <= 0:
		return fmt.Errorf("%s: amount %d fen is not positive: %w", req.OutTradeNo, req.AmountFen, ErrMalformed)
	case req.TradeType != payment.TradeTypeJSAPI && req.TradeType != payment.TradeTypeNative:
		return fmt.Errorf("%s: trade type %q is neither JSAPI nor NATIVE: %w", req.OutTradeNo, Truncate(req.TradeType, 16), ErrMalformed)
	case req.TradeType == payment.TradeTypeJSAPI && req.OpenID == "":
		return fmt.Errorf("%s: JSAPI needs the payer's openid: %w", req.OutTradeNo, ErrMalformed)
	case req.NotifyURL == "":
		return fmt.Errorf("%s: no notify_url: %w", req.OutTradeNo, ErrMalformed)
	case req.Description == "":
		return fmt.Errorf("%s: empty description: %w", req.OutTradeNo, ErrMalformed)
	case !TextOK(req.Description):
		return fmt.Errorf("%s: description is not UTF-8 text: %w", req.OutTradeNo, ErrMalformed)
	case !descRunes && len(req.Description) > maxDesc:
		return fmt.Errorf("%s: description is %d bytes, WeChat takes at most %d: %w", req.OutTradeNo, len(req.Description), maxDesc, ErrMalformed)
	case descRunes && utf8.RuneCountInString(req.Description) > maxDesc:
		return fmt.Errorf("%s: description is %d characters, WeChat takes at most %d: %w",
			req.OutTradeNo, utf8.RuneCountInString(req.Description), maxDesc, ErrMalformed)
	case !TextOK(req.OpenID) || !TextOK(req.NotifyURL) || !TextOK(req.Currency):
		return fmt.Errorf("%s: openid, notify_url or currency is not UTF-8 text: %w", req.OutTradeNo, ErrMalformed)
	case req.ClientIP != "" && net.ParseIP(req.ClientIP) == nil:
		return fmt.Errorf("%s: client IP %q: %w", req.OutTradeNo, Truncate(req.ClientIP, 40), ErrMalformed)
	}
	return nil
}

// TextOK reports whether s is valid UTF-8 without control characters other
// than tab, LF and CR, so that it survives XML and WeChat's NOT_UTF8 check.
func TextOK(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f || r == 0xfffe || r == 0xffff {
			return false
		}
	}
	return true
}
