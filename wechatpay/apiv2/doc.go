// Package apiv2 speaks WeChat Pay's API v2: XML messages signed with the
// merchant's API key (MD5 or HMAC-SHA256), payment notifications, and the
// order query, unified order and close calls.
//
// Nothing here logs, and no error message ever contains the API key.
package apiv2
