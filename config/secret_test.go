package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const secretValue = "s3cr3t-value-0123456789abcdef"

// holder has a Secret in every kind of place fmt and slog reach: an
// exported field, an unexported one (printed by reflection, without its
// methods), a slice and a pointer.
type holder struct {
	Key    Secret
	key    Secret
	Tokens []Secret
	Ptr    *Secret
}

func newHolder() holder {
	s := NewSecret(secretValue)
	return holder{Key: s, key: s, Tokens: []Secret{s, NewSecret(secretValue + "2")}, Ptr: &s}
}

// Every fmt verb, with and without flags, on a Secret, a pointer to one and
// structs holding them.
func TestSecretMaskedUnderEveryVerb(t *testing.T) {
	s := NewSecret(secretValue)
	h := newHolder()
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%p", "%T", "%10v", "%-30s", "%#q", "% x", "%U", "%c", "%b", "%o", "%e", "%8.3f"}
	for _, verb := range verbs {
		for name, arg := range map[string]any{"Secret": s, "*Secret": &s, "struct": h, "*struct": &h, "slice": h.Tokens, "map": map[string]Secret{"k": s}} {
			out := fmt.Sprintf(verb, arg)
			if strings.Contains(out, secretValue) || strings.Contains(out, fmt.Sprintf("%x", secretValue)) ||
				strings.Contains(out, fmt.Sprintf("%X", secretValue)) {
				t.Errorf("fmt %s of %s shows the secret: %s", verb, name, out)
			}
		}
	}
	if got := fmt.Sprintf("%v|%s|%+v", s, s, s); got != "[redacted]|[redacted]|[redacted]" {
		t.Errorf("masked forms = %q", got)
	}
	if got := fmt.Sprintf("%#v", s); got != `config.Secret("[redacted]")` {
		t.Errorf("%%#v = %q", got)
	}
	if got := fmt.Sprint(Secret{}) + fmt.Sprint(NewSecret("")); got != "" {
		t.Errorf("an unset secret prints %q, want nothing", got)
	}
	if fmt.Sprint(s) != s.String() || s.GoString() != fmt.Sprintf("%#v", s) {
		t.Error("String/GoString disagree with fmt")
	}
	if err := fmt.Errorf("connect with %v: %w", s, fmt.Errorf("inner %s", s)); strings.Contains(err.Error(), secretValue) {
		t.Errorf("error shows the secret: %v", err)
	}
}

// The slog handlers: as an attribute, inside a group, inside a struct.
func TestSecretMaskedInSlog(t *testing.T) {
	s := NewSecret(secretValue)
	var _ slog.LogValuer = s // the interface, not a look-alike method
	if v := s.LogValue(); v.Kind() != slog.KindString || v.String() != "[redacted]" {
		t.Errorf("LogValue = %v (%v)", v, v.Kind())
	}
	for name, newHandler := range map[string]func(*strings.Builder) slog.Handler{
		"json": func(b *strings.Builder) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *strings.Builder) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var b strings.Builder
		l := slog.New(newHandler(&b))
		h := newHolder()
		l.Info("secret", "key", s, "ptr", &s, "holder", h, "holder_ptr", &h, "tokens", h.Tokens)
		l.Info("grouped", slog.Group("g", slog.Any("key", s)), slog.Any("any", s))
		l.With("key", s).WithGroup("w").Info("with", "key", s)
		out := b.String()
		if strings.Contains(out, secretValue) {
			t.Errorf("%s handler shows the secret:\n%s", name, out)
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s handler: no masked value in\n%s", name, out)
		}
	}
}

func TestSecretMaskedInJSONAndText(t *testing.T) {
	s := NewSecret(secretValue)
	h := newHolder()
	for _, v := range []any{s, &s, h, &h, map[string]Secret{"k": s}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), secretValue) {
			t.Errorf("JSON shows the secret: %s", b)
		}
	}
	if b, _ := json.Marshal(s); string(b) != `"[redacted]"` {
		t.Errorf("JSON = %s", b)
	}
	if b, _ := s.MarshalText(); string(b) != "[redacted]" {
		t.Errorf("text = %s", b)
	}
	if s.Reveal() != secretValue || (Secret{}).Reveal() != "" || (Secret{}).Set() || !s.Set() {
		t.Error("Reveal/Set")
	}
}
