package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/sim"
)

// The kinds of fault, each a SIGKILL followed by a restart.
const (
	faultWorker   = "worker"
	faultAPI      = "api"
	faultTemporal = "temporal"
	faultPostgres = "postgres"
)

var faultKinds = []string{faultWorker, faultAPI, faultTemporal, faultPostgres}

// fault is one crash and recovery.
type fault struct {
	Kind    string
	Target  string
	At      time.Duration // since the run started
	Down    time.Duration // from SIGKILL until the restart began
	Recover time.Duration // from the restart until it was ready again
	Err     error
}

// faults injects crashes one at a time: after a random gap it SIGKILLs a
// random target, leaves it down for a random outage, restarts it and waits
// until it is ready. The kinds come in shuffled rounds so each is hit
// equally often. It stops once stop is closed and every kind has been hit
// at least once, or when ctx ends.
type faults struct {
	st       *stack.Stack
	d        *stack.Deployment // whose workers and apis are hit
	rng      *rand.Rand
	gap      [2]time.Duration
	outage   [2]time.Duration
	started  time.Time
	progress func(string)
}

func (f *faults) run(ctx context.Context, stop <-chan struct{}) []fault {
	var done []fault
	hit := map[string]bool{}
	var round []string
	for {
		if len(hit) == len(faultKinds) {
			select {
			case <-stop:
				return done
			default:
			}
		}
		if !f.sleep(ctx, f.between(f.gap)) {
			return done
		}
		if len(round) == 0 {
			round = append([]string(nil), faultKinds...)
			f.rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		kind := round[0]
		round = round[1:]
		ft := f.inject(ctx, kind)
		done = append(done, ft)
		hit[kind] = true
		status := "ok"
		if ft.Err != nil {
			status = "ERROR " + ft.Err.Error()
		}
		f.progress(fmt.Sprintf("fault %-8s %-10s down %5.1fs, ready after %5.1fs: %s", ft.Kind, ft.Target,
			ft.Down.Seconds(), ft.Recover.Seconds(), status))
		if ft.Err != nil {
			return done // the stack is not whole; the checks will say what that cost
		}
	}
}

func (f *faults) inject(ctx context.Context, kind string) fault {
	ft := fault{Kind: kind, At: time.Since(f.started)}
	var kill func() error
	var restart func(context.Context) error
	switch kind {
	case faultWorker, faultAPI:
		ps := f.d.Workers
		if kind == faultAPI {
			ps = f.d.APIs
		}
		p := ps[f.rng.IntN(len(ps))]
		ft.Target, kill, restart = p.Name, p.Kill, p.Restart
	case faultTemporal:
		ft.Target, kill, restart = "dev-server", f.st.Temporal.Kill, f.st.Temporal.Restart
	case faultPostgres:
		ft.Target, kill, restart = "postmaster", f.st.PG.Kill, f.st.RestartPG
	}
	outage := f.between(f.outage)
	t0 := time.Now()
	if ft.Err = kill(); ft.Err != nil {
		return ft
	}
	f.sleep(ctx, outage)
	t1 := time.Now()
	ft.Down = t1.Sub(t0)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	ft.Err = restart(rctx)
	ft.Recover = time.Since(t1)
	return ft
}

func (f *faults) between(r [2]time.Duration) time.Duration {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + time.Duration(f.rng.Int64N(int64(r[1]-r[0])))
}

func (f *faults) sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// simFaults reads what the sandbox injected (GET /sim/faults).
func (p *payer) simFaults(ctx context.Context) (sim.FaultsView, error) {
	var v sim.FaultsView
	status, body, err := p.do(ctx, http.MethodGet, p.d.SimURL+"/sim/faults", nil, &v)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("GET /sim/faults: %d %s", status, body)
	}
	return v, err
}
