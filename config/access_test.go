package config

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func baseEnv(kv ...string) map[string]string {
	m := map[string]string{"WECHATPAY_APPID": "wx1", "WECHATPAY_MCHID": "1"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

const (
	tokA = "tok-A-0123456789abcdef"
	tokB = "tok_B.0123456789~+/abc=="
)

func TestAPITokensParsed(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		want        []string
	}{
		{"unset", "", nil},
		{"blank", "   ", nil},
		{"only commas", " , ,", nil},
		{"one", tokA, []string{tokA}},
		{"two for a rotation", tokA + "," + tokB, []string{tokA, tokB}},
		{"blanks and empty entries ignored", " " + tokA + " ,, " + tokB + " ,", []string{tokA, tokB}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(baseEnv("API_TOKENS", tt.value)))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range c.APITokens {
				got = append(got, s.Reveal())
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("tokens = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAPITokensRejectedWithoutShowingThem(t *testing.T) {
	for _, tt := range []struct{ name, value, want string }{
		{"too short", tokA + ",short-tok", "token 2 is shorter than 16 characters"},
		{"inner space", "tok A 0123456789abcdef", "token 1 has characters other than"},
		{"quote", `"` + tokA + `"`, "token 1 has characters other than"},
		{"non-ASCII", "tok-\u00e9-0123456789abcdef", "token 1 has characters other than"},
		{"= inside", "tok=A0123456789abcdef", "token 1 has characters other than"},
		{"only =", "================", "token 1 has characters other than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(baseEnv("API_TOKENS", tt.value)))
			if err == nil || !strings.Contains(err.Error(), "API_TOKENS: "+tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, tok := range strings.Split(tt.value, ",") {
				if strings.Contains(err.Error(), strings.Trim(tok, `"`)) {
					t.Fatalf("the error shows a token: %v", err)
				}
			}
		})
	}
}

// Tokens are Secrets: nothing that prints the configuration shows them.
func TestAPITokensNeverPrint(t *testing.T) {
	c, err := Load(env(baseEnv("API_TOKENS", tokA+","+tokB)))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("cfg", "cfg", c, "tokens", c.APITokens)
	slog.New(slog.NewTextHandler(&b, nil)).Info("cfg", "cfg", c, "tokens", c.APITokens)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), b.String()} {
		if strings.Contains(out, tokA) || strings.Contains(out, tokB) {
			t.Fatalf("a token is printed: %s", out)
		}
	}
}

// The fail-closed start rule of the interface: without API_TOKENS only a
// loopback API_ADDR is allowed.
func TestCheckAPIAccess(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		tokens string
		ok     bool
	}{
		{"127.0.0.1:8080", "", true},
		{"127.0.0.2:8080", "", true},
		{"127.255.255.254:1", "", true},
		{"[::1]:8080", "", true},
		{"localhost:8080", "", true},
		{"LOCALHOST:8080", "", true},
		{"[::ffff:127.0.0.1]:8080", "", true},
		{":8080", "", false},
		{"0.0.0.0:8080", "", false},
		{"[::]:8080", "", false},
		{"192.168.1.10:8080", "", false},
		{"10.0.0.1:8080", "", false},
		{"api.internal:8080", "", false},
		{"localhost.example.com:8080", "", false},
		{"128.0.0.1:8080", "", false},
		{"0.0.0.0:8080", tokA, true},
		{":8080", tokA, true},
		{"192.168.1.10:8080", tokA + "," + tokB, true},
		{"0.0.0.0:8080", " , ", false}, // empty counts as unset
	} {
		t.Run(tt.addr+"/"+tt.tokens, func(t *testing.T) {
			c, err := Load(env(baseEnv("API_ADDR", tt.addr, "API_TOKENS", tt.tokens)))
			if err != nil {
				t.Fatal(err)
			}
			err = c.CheckAPIAccess()
			if tt.ok != (err == nil) {
				t.Fatalf("CheckAPIAccess = %v, want ok=%v", err, tt.ok)
			}
			if err != nil {
				for _, want := range []string{"API_TOKENS", "loopback", tt.addr} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("message %q does not say %q", err, want)
					}
				}
			}
		})
	}
	c, _ := Load(env(baseEnv("API_ADDR", "no-port")))
	if err := c.CheckAPIAccess(); err == nil || !strings.Contains(err.Error(), "API_ADDR") {
		t.Fatalf("API_ADDR without a port: %v", err)
	}
}
