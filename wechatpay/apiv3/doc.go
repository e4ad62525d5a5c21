// Package apiv3 speaks WeChat Pay's API v3: JSON requests signed with the
// merchant's RSA key, answers and notifications signed by WeChat Pay
// (public keys or platform certificates, chosen by Wechatpay-Serial), and
// notification resources encrypted with AES-256-GCM under the APIv3 key.
// Signing, verification and decryption come from the official SDK
// (github.com/wechatpay-apiv3/wechatpay-go).
//
// Nothing here logs, and no error message ever contains a key.
package apiv3
