// Package pgtest starts a throwaway PostgreSQL 15 cluster from the Debian
// binaries so that integration tests run against the real database, not a
// fake. It is a normal package (not _test) so tests in any package can use it.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultBinDir is where Debian's postgresql-15 package puts the server
// binaries; $PG_BIN overrides it.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// Cluster is one PostgreSQL cluster in a temporary directory, listening on a
// loopback TCP port. It is not safe for concurrent Stop/Restart/Kill calls;
// connecting to it from many goroutines is fine.
type Cluster struct {
	dir    string // temp dir: data/ below it, the unix socket and the server log in it
	data   string
	binDir string
	port   int
	asUser string // "postgres" when we run as root (the server refuses to run as root), else ""
}

// Start runs initdb into a fresh temporary directory and starts postgres on
// a free loopback port. The server is tuned for throwaway data: no fsync.
func Start(ctx context.Context) (*Cluster, error) {
	binDir := os.Getenv("PG_BIN")
	if binDir == "" {
		binDir = DefaultBinDir
	}
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(binDir, name)); err != nil {
			return nil, fmt.Errorf("pgtest: %s not found in %s (install postgresql-15 or set PG_BIN): %w", name, binDir, err)
		}
	}

	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: temp dir: %w", err)
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data"), binDir: binDir}
	if err := c.init(ctx); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	// Another process may take the port between our probe and the server's
	// bind, so try a few ports before giving up.
	for attempt := 0; ; attempt++ {
		c.port, err = freePort()
		if err == nil {
			err = c.writePort()
		}
		if err == nil {
			err = c.start(ctx)
		}
		if err == nil {
			return c, nil
		}
		if attempt == 2 || ctx.Err() != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
}

// init creates the data directory, owned by postgres when we are root.
func (c *Cluster) init(ctx context.Context) error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("pgtest: running as root needs a postgres user (install postgresql-15): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		// MkdirTemp made dir 0700 and owned by root; the server must own it.
		if err := os.Chown(c.dir, uid, gid); err != nil {
			return fmt.Errorf("pgtest: chown %s: %w", c.dir, err)
		}
		c.asUser = "postgres"
	}
	// --locale=C keeps initdb independent of the locales installed here.
	if out, err := c.run(ctx, "initdb", "-D", c.data, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// writePort appends our settings to postgresql.conf, so that a plain
// pg_ctl start (Restart) comes back with the same ones.
func (c *Cluster) writePort() error {
	conf := fmt.Sprintf(`
# pgtest
port = %d
listen_addresses = '127.0.0.1'
unix_socket_directories = '%s'
max_connections = 200
fsync = off
full_page_writes = off
synchronous_commit = off
`, c.port, c.dir)
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: postgresql.conf: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return fmt.Errorf("pgtest: postgresql.conf: %w", err)
	}
	return f.Close()
}

func (c *Cluster) start(ctx context.Context) error {
	out, err := c.run(ctx, "pg_ctl", "start", "-D", c.data, "-w", "-t", "60", "-l", c.logPath())
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl start: %w\n%s\n%s", err, out, c.logTail())
	}
	return nil
}

// URL is the connection string of database db on this cluster.
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, url.PathEscape(db))
}

// Port is the TCP port the cluster listens on (it keeps it across Restart).
func (c *Cluster) Port() int { return c.port }

// CreateDatabase creates database name and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// Stop shuts the server down (fast mode: sessions are disconnected) and
// keeps the data, so that Restart can bring it back.
func (c *Cluster) Stop() error {
	out, err := c.run(context.Background(), "pg_ctl", "stop", "-D", c.data, "-m", "fast", "-w", "-t", "60")
	if err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Restart starts the server again on the same port after Stop or Kill.
// After Kill the old backends may take a moment to notice their postmaster
// died and release the shared memory, so the start is retried until ctx ends.
func (c *Cluster) Restart(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		err := c.start(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kill sends SIGKILL to the postmaster, as a crash would; Restart recovers.
// It returns once the postmaster is gone.
func (c *Cluster) Kill() error {
	pid, err := c.PID()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("pgtest: kill postmaster %d: %w", pid, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		switch state := procState(pid); state {
		case "":
			return nil
		case "Z":
			// pg_ctl started the postmaster as an orphan, and an init that
			// does not reap leaves it a zombie. The server's own stale lock
			// check sees the pid as alive and would refuse to start, so
			// remove the lock file: a zombie is certainly dead.
			if err := os.Remove(filepath.Join(c.data, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("pgtest: remove stale postmaster.pid: %w", err)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postmaster %d still running after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close stops the server (immediate mode: no clean shutdown needed for
// throwaway data) and removes its directory.
func (c *Cluster) Close() error {
	var stopErr error
	if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
		if out, err := c.run(context.Background(), "pg_ctl", "stop", "-D", c.data, "-m", "immediate", "-w", "-t", "60"); err != nil {
			stopErr = fmt.Errorf("pgtest: pg_ctl stop: %w\n%s", err, out)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return errors.Join(stopErr, fmt.Errorf("pgtest: remove %s: %w", c.dir, err))
	}
	return stopErr
}

func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// logTail returns the end of the server log, which says why a start failed.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logPath())
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// PID is the postmaster's process id (its backends are its children),
// read from its postmaster.pid.
func (c *Cluster) PID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("pgtest: server not running: %w", err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return 0, fmt.Errorf("pgtest: bad postmaster.pid: %w", err)
	}
	return pid, nil
}

// run runs a PostgreSQL binary, as the postgres user when we are root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	bin := filepath.Join(c.binDir, name)
	var cmd *exec.Cmd
	if c.asUser != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.asUser, "--", bin}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, bin, args...)
	}
	// The caller's working directory (say /root) may be closed to postgres.
	cmd.Dir = c.dir
	// pg_ctl start -l sends the server's output to its log file, so the
	// server does not inherit our pipe and CombinedOutput returns with pg_ctl.
	return cmd.CombinedOutput()
}

// procState returns the state letter from /proc/pid/stat ("R", "S", "Z", …),
// or "" when the process does not exist.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name in parentheses may contain spaces; the state follows it.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
