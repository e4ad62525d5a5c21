// Package wechatpay holds what WeChat Pay's two merchant APIs share: the
// error taxonomy (APIError and the sentinels callers test with errors.Is),
// Beijing time, amounts in fen and the checks a prepay request must pass.
// The protocols themselves live in wechatpay/apiv2 (XML, MD5/HMAC-SHA256
// signatures) and wechatpay/apiv3 (JSON, RSA signatures, AES-GCM).
//
// Nothing here logs, and no error message ever contains an API key.
package wechatpay
