package deploy

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// promtool finds the promtool that `make bin/promtool` builds from the Go
// module proxy (or $PROMTOOL). Without it the rule tests cannot run: under
// CI (CI=true) that is a failure, locally a skip that says what to run.
func promtool(t *testing.T) string {
	t.Helper()
	path := os.Getenv("PROMTOOL")
	if path == "" {
		path = filepath.Join("..", "bin", "promtool")
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found at %s (CI=true): run `make bin/promtool` before the tests", path)
		}
		t.Skipf("promtool not found at %s: run `make bin/promtool` (or set PROMTOOL) to test the alerting rules", path)
	}
	return path
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = "prometheus"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
}

// The alerting rules parse and pass their unit tests (alerts_test.yml:
// PayflowOrdersInReview, PayflowWeChatFaults; bills_alerts_test.yml: the
// daily bill reconciliation's alerts).
func TestAlertRulesWithPromtool(t *testing.T) {
	runPromtool(t, "check", "rules", "alerts.yml")
	runPromtool(t, "test", "rules", "alerts_test.yml")
	runPromtool(t, "test", "rules", "bills_alerts_test.yml")
}
