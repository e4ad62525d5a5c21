package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/payflow/payflow/config"
)

// publicRoutes are the only requests served without a bearer token:
// WeChat Pay's notifications (WeChat cannot send a token; their signatures
// authenticate them) and the probes and metrics of load balancers and
// Prometheus. The list names what is open, so /orders, /reconciliations
// and any path added later need a token by default. Matching is exact on
// method and path: "/wechatpay/notify/../../orders" is not public.
var publicRoutes = map[string]bool{
	http.MethodPost + " /wechatpay/notify":    true,
	http.MethodPost + " /wechatpay/v3/notify": true,
	http.MethodGet + " /healthz":              true,
	http.MethodGet + " /readyz":               true,
	http.MethodGet + " /metrics":              true,
}

// isPublic reports whether r may be served without a token.
func isPublic(r *http.Request) bool { return publicRoutes[r.Method+" "+r.URL.Path] }

// bearerPrefix is the scheme the interface fixes: "Authorization: Bearer
// <token>", with one space. Other schemes, other spellings and tokens in
// the query string are not credentials here.
const bearerPrefix = "Bearer "

// tokenCheck holds the SHA-256 digests of API_TOKENS, never the tokens.
// A presented token is hashed and compared with every digest in constant
// time, so neither the comparison's time nor the tokens' lengths tell an
// attacker how close a guess was or which token matched.
type tokenCheck struct {
	digests [][sha256.Size]byte
}

func newTokenCheck(tokens []config.Secret) *tokenCheck {
	c := &tokenCheck{}
	for _, t := range tokens {
		if t.Set() {
			c.digests = append(c.digests, sha256.Sum256([]byte(t.Reveal())))
		}
	}
	return c
}

// Reasons a request is denied, for the log line (never the header).
const (
	denyMissing   = "missing"
	denyMalformed = "malformed"
	denyWrong     = "wrong token"
)

// verify checks the request's Authorization header and returns "" when
// it carries one of the tokens, else why not.
func (c *tokenCheck) verify(r *http.Request) string {
	values := r.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return denyMissing
	case len(values) > 1:
		return denyMalformed
	}
	token, ok := strings.CutPrefix(values[0], bearerPrefix)
	if !ok || token == "" || strings.ContainsAny(token, " \t") {
		return denyMalformed
	}
	sum := sha256.Sum256([]byte(token))
	match := 0
	for _, d := range c.digests { // every digest, no early exit
		match |= subtle.ConstantTimeCompare(sum[:], d[:])
	}
	if match != 1 {
		return denyWrong
	}
	return ""
}

// guard wraps the router. Public routes pass as they are. Every other
// request needs a token when API_TOKENS is set (none configured: bin/api
// listens on loopback only) and then runs with the order API's deadline,
// RequestTimeout, so it answers before the server and proxy give up.
func (s *Server) guard(next http.Handler) http.Handler {
	tokens := newTokenCheck(s.Tokens)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPublic(r) {
			next.ServeHTTP(w, r)
			return
		}
		if len(tokens.digests) > 0 {
			if reason := tokens.verify(r); reason != "" {
				s.deny(w, r, reason)
				return
			}
		}
		ctx, cancel := context.WithTimeout(r.Context(), RequestTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// deny answers 401 before anything is read or changed, and logs the
// request without its Authorization header or query string.
func (s *Server) deny(w http.ResponseWriter, r *http.Request, reason string) {
	s.Logger.Warn("request denied: no valid bearer token",
		"method", r.Method, "path", clip(r.URL.Path, 200), "remote", r.RemoteAddr, "reason", reason)
	w.Header().Set("WWW-Authenticate", "Bearer")
	msg := "this endpoint needs Authorization: Bearer <token> (one of API_TOKENS)"
	if reason == denyWrong {
		msg = "the bearer token is not valid"
	}
	writeError(w, http.StatusUnauthorized, msg)
}

// clip cuts s to at most n bytes for a log line.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
