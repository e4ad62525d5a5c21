package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name may hold spaces and parentheses: fields count from
	// the last ")".
	line := "4242 (a (b) c) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 0 123 456 789\n"
	pid, p, ok := parseStat(line)
	if !ok || pid != 4242 || p.ppid != 17 || p.own != 300 || p.reaped != 10 {
		t.Fatalf("parseStat = %d %+v %v, want 4242 {ppid:17 own:300 reaped:10} true", pid, p, ok)
	}
	for _, bad := range []string{"", "4242 no parens", "x (a) S 1 2", "4242 (a) S 1 2 3"} {
		if _, _, ok := parseStat(bad); ok {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestTreeTicksCountsEachTickOnce(t *testing.T) {
	procs := map[int]procTimes{
		10: {ppid: 1, own: 100, reaped: 40}, // 40: children that exited
		11: {ppid: 10, own: 30, reaped: 5},
		12: {ppid: 11, own: 7},
		20: {ppid: 1, own: 1000}, // not in 10's tree
	}
	children := map[int][]int{1: {10, 20}, 10: {11}, 11: {12}}
	if got := treeTicks(procs, children, 10, true); got != 182 {
		t.Errorf("tree of 10 = %d ticks, want 100+40+30+5+7 = 182", got)
	}
	if got := treeTicks(procs, children, 10, false); got != 100 {
		t.Errorf("10 alone = %d ticks, want its own 100", got)
	}
	if got := treeTicks(procs, children, 0, true); got != 0 {
		t.Errorf("pid 0 = %d ticks, want 0", got)
	}
}

func TestCPURowsPerOperation(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC)
	s := &cpuSampler{Parts: []cpuPart{{Name: "server"}, {Name: "worker"}}}
	for i, ticks := range [][]int64{{0, 0}, {100, 50}, {300, 90}} {
		s.samples = append(s.samples, cpuSample{At: t0.Add(time.Duration(i) * 10 * time.Second), Ticks: ticks})
	}
	var rows []cpuRow
	for _, w := range []struct {
		label    string
		ops      int
		from, to time.Time
	}{
		{"empty", 500, t0, t0.Add(10 * time.Second)},
		{"payments, step 40/s", 400, t0.Add(10*time.Second + 200*time.Millisecond), t0.Add(20 * time.Second)},
		{"nothing done", 0, t0, t0.Add(20 * time.Second)},
	} {
		if row, ok := s.Row(w.label, w.ops, w.from, w.to); ok {
			rows = append(rows, row)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2 (none for a window with nothing done)", len(rows))
	}
	// 1 s of server and 0.5 s of worker CPU for 500 workflows; then 2 s
	// and 0.4 s for 400 payments.
	for _, c := range []struct {
		row          cpuRow
		label        string
		server, work float64
		rate         float64
	}{{rows[0], "empty", 2, 1, 50}, {rows[1], "payments, step 40/s", 5, 1, 40}} {
		if c.row.Label != c.label || c.row.PerOp(0) != c.server || c.row.PerOp(1) != c.work || c.row.Rate() != c.rate {
			t.Errorf("%s: %.2f and %.2f ms per op at %.1f/s, want %s: %.2f and %.2f at %.1f/s",
				c.row.Label, c.row.PerOp(0), c.row.PerOp(1), c.row.Rate(), c.label, c.server, c.work, c.rate)
		}
	}
	table := cpuTable(targetResult{Name: "dev", CPU: rows})
	for _, want := range []string{"| measurement | done/s | server | worker | all | machine busy |", "| empty | 50.0 | 2.0 | 1.0 | 3.0 | 0.15 |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if _, ok := s.Use(t0.Add(time.Hour), t0.Add(time.Hour)); ok {
		t.Error("an empty window has a use")
	}
}

// A busy child shows up in its parent's tree, and not in the sampler's
// own process.
func TestSamplerSeesAChildsCPU(t *testing.T) {
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	s := &cpuSampler{Every: time.Second, Parts: []cpuPart{
		{Name: "child", Pids: func() []int { return []int{cmd.Process.Pid} }, Tree: true},
		{Name: "self", Pids: func() []int { return []int{os.Getpid()} }},
	}}
	from := time.Now()
	s.sample()
	// Sample while it runs (its own time) and once it exited and was
	// reaped (then nothing: its ticks went to this test's process, which
	// is not counted as a tree).
	time.Sleep(300 * time.Millisecond)
	s.sample()
	to := time.Now()
	u, ok := s.Use(from, to)
	_ = cmd.Wait()
	if !ok {
		t.Fatal("no use")
	}
	if u.Seconds[0] <= 0 {
		t.Errorf("the child's CPU was not seen: %+v", u)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.Run(ctx) // returns at once on a done context, after one sample
	if len(s.samples) != 3 {
		t.Errorf("%d samples, want 3", len(s.samples))
	}
}
