package deploy

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
)

// directive is one nginx directive: its name, arguments and, for a block
// (http, server, location, if...), the directives inside.
type directive struct {
	name  string
	args  []string
	block []*directive
	line  int
}

// parseNginx reads nginx's configuration syntax: words and quoted strings,
// ";" ending a directive, "{ … }" a block, "#" a comment to the end of the
// line. It is enough for deploy/nginx/nginx.conf, which the tests below
// read as nginx does.
func parseNginx(src string) ([]*directive, error) {
	toks, lines, err := tokenizeNginx(src)
	if err != nil {
		return nil, err
	}
	pos := 0
	var parse func(depth int) ([]*directive, error)
	parse = func(depth int) ([]*directive, error) {
		var out []*directive
		var cur *directive
		for pos < len(toks) {
			tok, line := toks[pos], lines[pos]
			pos++
			switch tok {
			case ";":
				if cur == nil {
					return nil, fmt.Errorf("line %d: empty directive", line)
				}
				out, cur = append(out, cur), nil
			case "{":
				if cur == nil {
					return nil, fmt.Errorf("line %d: block without a name", line)
				}
				b, err := parse(depth + 1)
				if err != nil {
					return nil, err
				}
				cur.block = b
				if cur.block == nil {
					cur.block = []*directive{}
				}
				out, cur = append(out, cur), nil
			case "}":
				if cur != nil || depth == 0 {
					return nil, fmt.Errorf("line %d: unexpected }", line)
				}
				return out, nil
			default:
				if cur == nil {
					cur = &directive{name: tok, line: line}
				} else {
					cur.args = append(cur.args, tok)
				}
			}
		}
		if cur != nil || depth != 0 {
			return nil, fmt.Errorf("unexpected end of file")
		}
		return out, nil
	}
	return parse(0)
}

func tokenizeNginx(src string) (toks []string, lines []int, err error) {
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case unicode.IsSpace(rune(c)):
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks, lines = append(toks, string(c)), append(lines, line)
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
				}
				if src[j] == '\n' {
					line++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks, lines = append(toks, b.String()), append(lines, line)
			i = j + 1
		default:
			// A word ends at blank, ";", "{" or "}", except the braces of
			// a "${name}" variable inside it.
			j, inVar := i, false
			for j < len(src) && !unicode.IsSpace(rune(src[j])) {
				if src[j] == '{' && j > i && src[j-1] == '$' {
					inVar = true
				} else if src[j] == '}' && inVar {
					inVar = false
				} else if strings.ContainsRune(";{}", rune(src[j])) {
					break
				}
				j++
			}
			toks, lines = append(toks, src[i:j]), append(lines, line)
			i = j
		}
	}
	return toks, lines, nil
}

// all returns the directives named name among ds.
func all(ds []*directive, name string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

// one returns the single directive named name among ds.
func one(t *testing.T, ds []*directive, name string) *directive {
	t.Helper()
	found := all(ds, name)
	if len(found) != 1 {
		t.Fatalf("want exactly one %s, found %d", name, len(found))
	}
	return found[0]
}

// walk calls f on every directive of the tree, with its enclosing blocks.
func walk(ds []*directive, parents []*directive, f func(d *directive, parents []*directive)) {
	for _, d := range ds {
		f(d, parents)
		if d.block != nil {
			walk(d.block, append(parents[:len(parents):len(parents)], d), f)
		}
	}
}

// nginxDuration reads an nginx time ("25s", "1m", "500ms", "10": seconds).
func nginxDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// nginxConf is deploy/nginx/nginx.conf, parsed, and its one server.
type nginxConf struct {
	http   *directive
	server *directive
}

func loadNginx(t *testing.T) nginxConf {
	t.Helper()
	src, err := os.ReadFile("nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	top, err := parseNginx(string(src))
	if err != nil {
		t.Fatalf("nginx.conf: %v", err)
	}
	http := one(t, top, "http")
	return nginxConf{http: http, server: one(t, http.block, "server")}
}

// setting is the value of a directive as a location sees it: the
// location's own, else the server's, else http's (nginx's inheritance).
func (c nginxConf) setting(loc *directive, name string) []string {
	for _, scope := range [][]*directive{loc.block, c.server.block, c.http.block} {
		if ds := all(scope, name); len(ds) > 0 {
			return ds[len(ds)-1].args
		}
	}
	return nil
}

// locations maps each location's argument ("= /healthz", "/") to it.
func (c nginxConf) locations() map[string]*directive {
	out := map[string]*directive{}
	for _, l := range all(c.server.block, "location") {
		out[strings.Join(l.args, " ")] = l
	}
	return out
}

// methodOnly reports which method a location admits through its
// `if ($request_method != M) { return 405; }`, "" when it has none.
func methodOnly(loc *directive) string {
	for _, d := range all(loc.block, "if") {
		cond := strings.Trim(strings.Join(d.args, " "), "()")
		m, ok := strings.CutPrefix(cond, "$request_method != ")
		if !ok || len(d.block) != 1 || d.block[0].name != "return" || strings.Join(d.block[0].args, " ") != "405" {
			continue
		}
		return m
	}
	return ""
}

func TestParseNginx(t *testing.T) {
	ds, err := parseNginx("a 1 '2 ;3'; # c { ;\nb { c \"x y\"; d { } }\ne ${v}x;")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 || ds[2].args[0] != "${v}x" || ds[0].name != "a" || strings.Join(ds[0].args, "|") != "1|2 ;3" || ds[1].name != "b" ||
		len(ds[1].block) != 2 || ds[1].block[0].args[0] != "x y" || ds[1].block[1].block == nil || ds[1].line != 2 {
		t.Fatalf("parsed %+v", ds)
	}
	for _, bad := range []string{"a {", "a }", "}", "a 'b;", "{ }", "a"} {
		if _, err := parseNginx(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
