package stack

import (
	"net/http"
	"testing"

	"github.com/payflow/payflow/config"
)

// The stack's apis run as in production, with API_TOKENS: a token that
// bin/api accepts, and Authorize sends it the way the api checks it.
func TestAPITokenAndAuthorize(t *testing.T) {
	tok := newToken()
	if len(tok) != 64 || tok == newToken() {
		t.Fatalf("token %q: want 64 random hex characters", tok)
	}
	cfg, err := config.Load(func(k string) string {
		return map[string]string{"WECHATPAY_APPID": AppID, "WECHATPAY_MCHID": MchID, "API_TOKENS": tok}[k]
	})
	if err != nil || len(cfg.APITokens) != 1 || cfg.APITokens[0].Reveal() != tok {
		t.Fatalf("bin/api would not take the token: %v", err)
	}
	s := &Stack{APIToken: tok}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/orders", nil)
	s.Authorize(req)
	if got := req.Header.Get("Authorization"); got != "Bearer "+tok {
		t.Fatalf("Authorization = %q", got)
	}
}
