package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestWriteDocKeepsNotesAndEarlierRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "docs", "benchmarks.md")
	run := func(name string) string { return runBegin + "\n### " + name + "\n" + runEnd + "\n" }

	if err := writeDoc(path, run("first")); err != nil {
		t.Fatal(err)
	}
	// Someone adds findings by hand.
	b, _ := os.ReadFile(path)
	withNotes := strings.Replace(string(b), "\n## Latest run", "\n"+notesBegin+"\nfindings\n"+notesEnd+"\n\n## Latest run", 1)
	if err := os.WriteFile(path, []byte(withNotes), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeDoc(path, run("second")); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	doc := string(b)
	if !strings.Contains(doc, notesBegin+"\nfindings\n"+notesEnd) {
		t.Errorf("notes lost:\n%s", doc)
	}
	first, second := strings.Index(doc, "### first"), strings.Index(doc, "### second")
	if first < 0 || second < 0 || second > first {
		t.Errorf("want the new run above the earlier one:\n%s", doc)
	}
	if got := len(runSections(doc)); got != 2 {
		t.Errorf("%d run sections, want 2", got)
	}
}

func TestSummarize(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarize(ds)
	if l.N != 100 || l.P50 != 50*time.Millisecond || l.P99 != 99*time.Millisecond || l.Max != 100*time.Millisecond {
		t.Errorf("summarize = %+v", l)
	}
	if (summarize(nil) != latencies{}) {
		t.Error("empty input should give zero latencies")
	}
}

func TestBillRowsAndReport(t *testing.T) {
	sizes, err := parseBillRows("100_000, 1000000")
	if err != nil || len(sizes) != 2 || sizes[0] != 100000 || sizes[1] != 1000000 {
		t.Fatalf("sizes %v, %v", sizes, err)
	}
	for _, bad := range []string{"", "0", "1000,10", "x", "6000000"} {
		if _, err := parseBillRows(bad); err == nil {
			t.Errorf("-bill-rows %q accepted", bad)
		}
	}
	r := &report{Commit: "abc", Bills: []billResult{
		{Rows: 100_000, Orders: 100_000, Reconcile: 5 * time.Second, Load: 3 * time.Second, Diff: time.Second, Status: "MATCHED", Matched: 100_000, PeakRSSKiB: 51200},
		{Rows: 1_000_000, Orders: 1_000_000, Reconcile: 50 * time.Second, Load: 30 * time.Second, Diff: 10 * time.Second, Status: "MATCHED", Matched: 1_000_000, PeakRSSKiB: 102400},
	}}
	md := r.billsMarkdown()
	for _, want := range []string{runBegin, runEnd, "| 1000000 | 1000000 | 50.0 s | 20000 | 30.0 s | 10.0 s | 100 MiB | MATCHED, 1000000 matched |",
		"Cost per row: 50.0 µs at 100000 rows, 50.0 µs at 1000000 rows (time ratio 10.0 for a row ratio of 10)."} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if len(runSections(md)) != 1 {
		t.Error("the bill run is not one section")
	}
}

// -worker-env and -api-env reach the measured processes as KEY=value
// pairs; anything else is refused when the flags are read.
func TestProcessEnvFlags(t *testing.T) {
	o, err := parseFlags([]string{"-worker-env", " WORKER_STICKY_TIMEOUT=30s, WORKER_WORKFLOW_POLLERS=8,", "-api-env", "NOTIFY_MAX_IN_FLIGHT=16"})
	if err != nil || !slices.Equal(o.workerEnv, []string{"WORKER_STICKY_TIMEOUT=30s", "WORKER_WORKFLOW_POLLERS=8"}) ||
		!slices.Equal(o.apiEnv, []string{"NOTIFY_MAX_IN_FLIGHT=16"}) {
		t.Fatalf("parsed %q %q, %v", o.workerEnv, o.apiEnv, err)
	}
	for _, bad := range []string{"WORKER_STICKY_TIMEOUT", "=30s", "A=1,B"} {
		if _, err := parseFlags([]string{"-worker-env", bad}); err == nil {
			t.Errorf("-worker-env %q accepted", bad)
		}
	}
}
