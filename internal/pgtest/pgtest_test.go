package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// TestClusterLifecycle walks a cluster through everything the fault tests
// elsewhere rely on: data survives a clean stop and a crash, and the port
// stays the same so clients reconnect.
func TestClusterLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	c, err := Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := c.dir
	defer c.Close()

	u, err := c.CreateDatabase(ctx, "lifecycle")
	if err != nil {
		t.Fatal(err)
	}
	if want := c.URL("lifecycle"); u != want {
		t.Fatalf("CreateDatabase url = %q, want %q", u, want)
	}
	mustExec(ctx, t, u, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, u); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(ctx, t, u); got != 1 {
		t.Fatalf("rows after restart = %d, want 1", got)
	}

	// A committed row must survive SIGKILL. With synchronous_commit=off the
	// last commits may not be flushed yet, so checkpoint after the commit
	// (a separate statement: a multi-statement string is one transaction).
	mustExec(ctx, t, u, "INSERT INTO t VALUES (2)")
	mustExec(ctx, t, u, "CHECKPOINT")
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, u); err == nil {
		t.Fatal("connected to a killed cluster")
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(ctx, t, u); got != 2 {
		t.Fatalf("rows after crash = %d, want 2", got)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("cluster dir %s still there after Close (err %v)", dir, err)
	}
}

func TestNewDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := NewDatabase(t), NewDatabase(t)
	if a == b {
		t.Fatalf("two calls returned the same database %s", a)
	}
	mustExec(ctx, t, a, "CREATE TABLE only_in_a (v int)")
	mustExec(ctx, t, b, "CREATE TABLE only_in_a (v int)") // would fail if a and b were one database
}

func TestDBName(t *testing.T) {
	for in, want := range map[string]string{
		"TestFoo":                         "t_testfoo",
		"TestFoo/sub case#01":             "t_testfoo_sub_case_01",
		"Test" + strings.Repeat("x", 100): "t_test" + strings.Repeat("x", 42), // 48 bytes
	} {
		if got := dbName(in); got != want {
			t.Errorf("dbName(%q) = %q, want %q", in, got, want)
		}
	}
}

func mustExec(ctx context.Context, t *testing.T, url, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
}

func count(ctx context.Context, t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
