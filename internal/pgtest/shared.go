package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// One cluster per test binary: initdb takes about a second, a new database
// a few milliseconds, so tests share the cluster and each gets its own
// database.
var shared struct {
	mu      sync.Mutex
	cluster *Cluster
	err     error // a failed start is not retried: every test reports it
	started bool
	n       int // databases created, to make names unique
}

// NewDatabase returns the URL of a new, empty database on the shared
// cluster, starting the cluster on first use. It calls t.Fatal on error.
// The cluster is not stopped at t's cleanup: TestMain calls Shutdown.
func NewDatabase(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	if !shared.started {
		shared.started = true
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		shared.cluster, shared.err = Start(ctx)
		cancel()
	}
	c, err := shared.cluster, shared.err
	shared.n++
	name := fmt.Sprintf("%s_%d", dbName(t.Name()), shared.n)
	shared.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: start cluster: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// Shutdown closes the shared cluster if NewDatabase started it. Call it from
// TestMain after m.Run; a later NewDatabase starts a new cluster.
func Shutdown() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster != nil {
		if err := shared.cluster.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: shutdown: %v\n", err)
		}
	}
	shared.cluster, shared.err, shared.started = nil, nil, false
}

// dbName turns a test name into a database name: lower case letters, digits
// and underscores, short enough to leave room for the counter within
// PostgreSQL's 63-byte identifier limit.
func dbName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 48 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}
