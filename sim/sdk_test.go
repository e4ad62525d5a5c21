package sim

import (
	"bytes"
	"context"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth"
	"github.com/wechatpay-apiv3/wechatpay-go/core/auth/verifiers"
	"github.com/wechatpay-apiv3/wechatpay-go/core/notify"
	"github.com/wechatpay-apiv3/wechatpay-go/utils"

	"github.com/payflow/payflow/wechatpay"
)

// The sandbox's v3 formats are checked against the official SDK
// (wechatpay-go's verifiers and notify.Handler), never against this
// project's own parser: both were written from one understanding and would
// share its mistakes.

// sdkVerifier is the SDK's verifier for one of the sandbox's identities in
// kf: a WeChat Pay public key (by its PUB_KEY_ID_…) or the platform
// certificate (by its serial), loaded with the SDK's own utils.
func sdkVerifier(t *testing.T, kf KeyFiles, id string) auth.Verifier {
	t.Helper()
	switch id {
	case kf.PublicKeyID:
		pub, err := utils.LoadPublicKeyWithPath(kf.PublicKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return verifiers.NewSHA256WithRSAPubkeyVerifier(id, *pub)
	case kf.SecondPublicKeyID:
		pub, err := utils.LoadPublicKeyWithPath(filepath.Join(kf.PlatformCertDir, id+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		return verifiers.NewSHA256WithRSAPubkeyVerifier(id, *pub)
	case kf.PlatformCertSerial:
		cert, err := utils.LoadCertificateWithPath(filepath.Join(kf.PlatformCertDir, id+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		return verifiers.NewSHA256WithRSAVerifier(core.NewCertificateMapWithList([]*x509.Certificate{cert}))
	}
	t.Fatalf("no identity %q in the test keys", id)
	return nil
}

// sdkParse runs a received notification through the SDK's notify handler
// (headers, the five-minute window, the signature, AEAD_AES_256_GCM) and
// unmarshals the plaintext into content, which must be a pointer.
func sdkParse(t *testing.T, kf KeyFiles, id string, h http.Header, body []byte, content any) (*notify.Request, error) {
	t.Helper()
	handler, err := notify.NewRSANotifyHandler(strings.TrimSpace(string(mustRead(t, kf.APIv3KeyFile))), sdkVerifier(t, kf, id))
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/wechatpay/v3/notify", bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	return handler.ParseNotifyRequest(context.Background(), req, content)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// isFault reports whether err is the fault kind (our configuration, for
// a request the sandbox refuses to verify).
func isFault(err error, kind string) bool {
	k, ok := wechatpay.Fault(err)
	return ok && k == kind
}

// closeWindow is how long after a v2 order the sandbox refuses to close
// it, at a time scale, and a little more.
func closeWindow(scale float64) time.Duration {
	return time.Duration(float64(closeAfter)*scale) + 20*time.Millisecond
}
