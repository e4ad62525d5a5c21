package main

import (
	"os"
	"path/filepath"
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
