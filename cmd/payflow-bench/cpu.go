package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/payflow/payflow/internal/pgtest"
	"github.com/payflow/payflow/internal/stack"
)

// The CPU time each part of the stack spends, so that a payment's cost
// can be set next to an empty workflow's. On a machine whose CPUs are all
// busy, a ratio of rates is a ratio of CPU per operation, and this says
// whose CPU it is (docs/benchmarks.md, "Where a payment's CPU goes").

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports (the kernel's HZ may differ; the
// exported unit does not).
const clockTicks = 100

// cpuPart is one part of the stack: its processes and, with Tree,
// everything they started (PostgreSQL's backends, say).
type cpuPart struct {
	Name string
	Pids func() []int // 0s and none are skipped
	Tree bool
}

// cpuSample is every part's CPU ticks so far, at one moment.
type cpuSample struct {
	At    time.Time
	Ticks []int64 // in parts' order
}

// cpuSampler reads the parts' CPU times from /proc every Every.
type cpuSampler struct {
	Parts []cpuPart
	Every time.Duration

	mu      sync.Mutex
	samples []cpuSample
}

// Run samples until ctx ends.
func (s *cpuSampler) Run(ctx context.Context) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *cpuSampler) sample() {
	procs := readProcs()
	children := map[int][]int{}
	for pid, p := range procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	cs := cpuSample{At: time.Now(), Ticks: make([]int64, len(s.Parts))}
	for i, part := range s.Parts {
		for _, root := range part.Pids() {
			cs.Ticks[i] += treeTicks(procs, children, root, part.Tree)
		}
	}
	s.mu.Lock()
	s.samples = append(s.samples, cs)
	s.mu.Unlock()
}

// treeTicks is root's own ticks or, with tree, its whole tree's: a live
// process's own time plus its reaped children's, so that each tick is
// counted once whether its process still runs or not.
func treeTicks(procs map[int]procTimes, children map[int][]int, root int, tree bool) int64 {
	if root == 0 {
		return 0
	}
	if !tree {
		return procs[root].own
	}
	var ticks int64
	stack := []int{root}
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p, ok := procs[pid]
		if !ok {
			continue
		}
		ticks += p.own + p.reaped
		stack = append(stack, children[pid]...)
	}
	return ticks
}

// cpuUse is the CPU each part spent in a window.
type cpuUse struct {
	Parts   []string
	Seconds []float64 // CPU seconds, in Parts' order
	Window  time.Duration
}

// Total is all parts' CPU seconds.
func (u cpuUse) Total() float64 {
	var t float64
	for _, s := range u.Seconds {
		t += s
	}
	return t
}

// Use is the CPU spent between the samples nearest to from and to; ok is
// false when the sampler has nothing on both sides.
func (s *cpuSampler) Use(from, to time.Time) (cpuUse, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, b := nearest(s.samples, from), nearest(s.samples, to)
	if a < 0 || b <= a {
		return cpuUse{}, false
	}
	u := cpuUse{Window: s.samples[b].At.Sub(s.samples[a].At)}
	for i, p := range s.Parts {
		u.Parts = append(u.Parts, p.Name)
		d := s.samples[b].Ticks[i] - s.samples[a].Ticks[i]
		u.Seconds = append(u.Seconds, float64(max(d, 0))/clockTicks)
	}
	return u, true
}

// nearest is the index of the sample taken closest to t, or -1.
func nearest(samples []cpuSample, t time.Time) int {
	best := -1
	var bestD time.Duration
	for i, s := range samples {
		d := s.At.Sub(t).Abs()
		if best < 0 || d < bestD {
			best, bestD = i, d
		}
	}
	return best
}

// procTimes is one process's parent and CPU ticks: its own (user and
// system) and its reaped children's.
type procTimes struct {
	ppid        int
	own, reaped int64
}

// readProcs reads /proc/<pid>/stat of every process.
func readProcs() map[int]procTimes {
	out := map[int]procTimes{}
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // it exited
		}
		pid, p, ok := parseStat(string(b))
		if ok {
			out[pid] = p
		}
	}
	return out
}

// parseStat reads pid, ppid, utime, stime, cutime and cstime from a
// /proc/<pid>/stat line. The command name is in parentheses and may hold
// spaces or parentheses itself, so fields are counted from the last ")".
func parseStat(line string) (int, procTimes, bool) {
	open, close := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || close < open {
		return 0, procTimes{}, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return 0, procTimes{}, false
	}
	// After ")": state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime cutime cstime …
	f := strings.Fields(line[close+1:])
	if len(f) < 15 {
		return 0, procTimes{}, false
	}
	n := make([]int64, 15)
	for _, i := range []int{1, 11, 12, 13, 14} {
		if n[i], err = strconv.ParseInt(f[i], 10, 64); err != nil {
			return 0, procTimes{}, false
		}
	}
	return pid, procTimes{ppid: int(n[1]), own: n[11] + n[12], reaped: n[13] + n[14]}, true
}

// stackParts are the parts of a stack whose CPU a run reports: the
// Temporal server and its PostgreSQL (if it has one), payflow's
// processes, their PostgreSQL, the sim and this tool itself (the load,
// and the ceilings' own worker; its children are the stack, so not its
// tree).
func stackParts(s *stack.Stack, d *stack.Deployment) []cpuPart {
	procs := func(ps ...*stack.Process) func() []int {
		return func() []int {
			var out []int
			for _, p := range ps {
				if p != nil {
					out = append(out, p.Pid())
				}
			}
			return out
		}
	}
	cluster := func(c *pgtest.Cluster) func() []int {
		return func() []int {
			pid, err := c.PID()
			if err != nil {
				return nil
			}
			return []int{pid}
		}
	}
	parts := []cpuPart{{Name: "Temporal server", Pids: procs(s.Temporal), Tree: true}}
	if s.TemporalPG != nil {
		parts = append(parts, cpuPart{Name: "its PostgreSQL", Pids: cluster(s.TemporalPG), Tree: true})
	}
	self := os.Getpid()
	return append(parts,
		cpuPart{Name: "api", Pids: procs(d.APIs...), Tree: true},
		cpuPart{Name: "worker", Pids: procs(d.Workers...), Tree: true},
		cpuPart{Name: "payments' PostgreSQL", Pids: cluster(s.PG), Tree: true},
		cpuPart{Name: "sim", Pids: procs(d.Sim), Tree: true},
		cpuPart{Name: "payflow-bench", Pids: func() []int { return []int{self} }},
	)
}

// cpuRow is one measurement's CPU per operation.
type cpuRow struct {
	Label string
	Ops   int // operations completed in the window
	Use   cpuUse
}

// Rate is operations per second over the window.
func (r cpuRow) Rate() float64 {
	if r.Use.Window <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Use.Window.Seconds()
}

// PerOp is part i's CPU milliseconds per operation.
func (r cpuRow) PerOp(i int) float64 { return r.perOp(r.Use.Seconds[i]) }

// perOp is seconds of CPU as milliseconds per operation.
func (r cpuRow) perOp(seconds float64) float64 {
	if r.Ops == 0 {
		return 0
	}
	return 1000 * seconds / float64(r.Ops)
}

// Row is the CPU per operation of ops operations done between from and
// to; ok is false without samples around the window or without
// operations.
func (s *cpuSampler) Row(label string, ops int, from, to time.Time) (cpuRow, bool) {
	u, ok := s.Use(from, to)
	if !ok || ops <= 0 {
		return cpuRow{}, false
	}
	return cpuRow{Label: label, Ops: ops, Use: u}, true
}
