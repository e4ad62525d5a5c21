package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerfileLines returns the Dockerfile's instructions, continuation
// lines joined and comments dropped.
func dockerfileLines(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	for _, l := range strings.Split(string(raw), "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") || (l == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		out = append(out, strings.Join(strings.Fields(cur+l), " "))
		cur = ""
	}
	return out
}

// goBuildLine is the RUN instruction that runs go build.
func goBuildLine(t *testing.T) string {
	t.Helper()
	for _, l := range dockerfileLines(t) {
		if strings.HasPrefix(l, "RUN ") && strings.Contains(l, "go build") {
			return l
		}
	}
	t.Fatal("the Dockerfile has no go build")
	return ""
}

// dockerfileBuiltBinaries are the names of the binaries the Dockerfile's
// go build produces (the last element of each package path).
func dockerfileBuiltBinaries(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, f := range strings.Fields(goBuildLine(t)) {
		if strings.HasPrefix(f, "./") {
			names = append(names, filepath.Base(f))
		}
	}
	return names
}

func TestDockerfileStages(t *testing.T) {
	var froms []string
	for _, l := range dockerfileLines(t) {
		if strings.HasPrefix(l, "FROM ") {
			froms = append(froms, l)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %v", froms)
	}
	if froms[0] != "FROM golang:1.26-bookworm AS build" {
		t.Errorf("build stage %q, want FROM golang:1.26-bookworm AS build", froms[0])
	}
	for _, f := range froms {
		img := strings.Fields(f)[1]
		_, tag, ok := strings.Cut(img[strings.LastIndex(img, "/")+1:], ":")
		if !ok || tag == "" || tag == "latest" {
			t.Errorf("%q: base image not pinned to a tag", f)
		}
	}
	lines := dockerfileLines(t)
	last := slices.IndexFunc(lines, func(l string) bool { return l == froms[len(froms)-1] })
	runtime := lines[last:]
	copied, user := false, ""
	for _, l := range runtime {
		if strings.HasPrefix(l, "COPY --from=build ") {
			copied = true
		}
		if strings.HasPrefix(l, "USER ") {
			user = strings.TrimPrefix(l, "USER ")
		}
	}
	if !copied {
		t.Error("the runtime stage does not copy the binaries from the build stage")
	}
	if user == "" || user == "root" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root:") {
		t.Errorf("runtime user %q, want a non-root user", user)
	}
}

func TestDockerfileBuildsEveryCommand(t *testing.T) {
	line := goBuildLine(t)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/api", "./cmd/worker", "./cmd/wechatpay-sim"} {
		if !regexp.MustCompile(`(^|\s)` + regexp.QuoteMeta(want) + `(\s|$)`).MatchString(line) {
			t.Errorf("go build line lacks %s: %s", want, line)
		}
	}
	// A service command added under cmd/ later must be in the image too.
	// The payflow-* commands are developer tools (benchmark, chaos) that
	// drive a stack from outside and stay out of the production image.
	entries, err := os.ReadDir("../cmd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), "payflow-") {
			continue
		}
		if !strings.Contains(line, "./cmd/"+e.Name()) {
			t.Errorf("the Dockerfile does not build ./cmd/%s", e.Name())
		}
		if strings.Contains(line, "./cmd/payflow-") {
			t.Errorf("the Dockerfile builds a developer tool: %s", line)
		}
	}
}
