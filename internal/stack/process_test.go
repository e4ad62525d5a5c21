package stack

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcessKillStopStart(t *testing.T) {
	p := &Process{Name: "sleeper", Path: "/bin/sh", Args: []string{"-c", "echo up; trap 'echo term; exit 0' TERM; while :; do sleep 0.05; done"},
		LogFile: filepath.Join(t.TempDir(), "sleeper.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err == nil {
		t.Fatal("second Start of a running process succeeded")
	}
	if !p.Running() || p.Pid() == 0 {
		t.Fatal("not running after Start")
	}
	time.Sleep(200 * time.Millisecond) // let it print
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if p.Running() {
		t.Fatal("running after Kill")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the shell install its trap
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "up\n"); got != 2 {
		t.Fatalf("log has %d starts, want 2:\n%s", got, b)
	}
	if !strings.Contains(string(b), "term") {
		t.Fatalf("Stop did not deliver SIGTERM:\n%s", b)
	}
}

func TestProcessExitsByItself(t *testing.T) {
	p := &Process{Name: "short", Path: "/bin/true", LogFile: filepath.Join(t.TempDir(), "short.log")}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Running() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.Running() {
		t.Fatal("still running after it exited")
	}
	if err := p.Start(); err != nil {
		t.Fatalf("start after exit: %v", err)
	}
	_ = p.Kill()
}
