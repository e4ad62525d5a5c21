// Package wechatpay speaks WeChat Pay's merchant APIs: it parses and signs
// API v2 XML, turns verified notifications into payment.Notification values
// and queries orders. API v2 names carry a V2 prefix; API v3 (JSON, RSA
// signatures, AES-GCM) lives in this package under V3 names.
//
// Nothing here logs, and no error message ever contains an API key.
package wechatpay
