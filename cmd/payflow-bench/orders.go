package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/internal/stack"
	"github.com/payflow/payflow/workflows"
)

// measureOrders is POST /orders from o.Concurrency callers for o.Duration,
// plain orders (no trade_type: no prepay at WeChat), as the StartWorkflow
// ceiling is measured: the api's whole create (token, JSON, the order's
// INSERT, the workflow's start, the answer) next to the start alone.
func measureOrders(ctx context.Context, apiURL string, authorize func(*http.Request), prefix string, o ceilingOptions) ceilingResult {
	r := closedLoop(ctx, o, func(ctx context.Context, i int) error {
		no := fmt.Sprintf("%s%07d", prefix, i)
		return postJSON(ctx, apiURL+"/orders", map[string]any{"out_trade_no": no, "amount_fen": 100 + i%900, "description": "bench"},
			http.StatusCreated, nil, authorize)
	})
	r.Name, r.What = "POST /orders (plain orders)", "orders/s"
	return r
}

// historyStats counts the event types in the histories of the given
// workflows (a sample of a load's payments): workflow tasks that timed out
// or failed, and how many tasks a payment took, show what a load did to
// the worker.
func historyStats(ctx context.Context, c client.Client, ids []string) map[string]int {
	out := map[string]int{}
	for _, id := range ids {
		it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			if err != nil {
				out["error reading history"]++
				break
			}
			name := strings.TrimPrefix(e.GetEventType().String(), "EVENT_TYPE_")
			if a := e.GetWorkflowTaskTimedOutEventAttributes(); a != nil {
				name += "(" + strings.TrimPrefix(a.GetTimeoutType().String(), "TIMEOUT_TYPE_") + ")"
			}
			if a := e.GetWorkflowTaskFailedEventAttributes(); a != nil {
				name += "(" + strings.TrimPrefix(a.GetCause().String(), "WORKFLOW_TASK_FAILED_CAUSE_") + ")"
			}
			out[name]++
		}
	}
	return out
}

// scrapeMetrics keeps a process's metrics after a load, for the log: the
// Temporal SDK's counters and sums (no buckets), and payflow's own whole
// (its few histograms' buckets tell where an acknowledgement's time went).
func scrapeMetrics(ctx context.Context, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := loadHTTP.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	var keep []string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "payflow_") || (strings.HasPrefix(line, "temporal_") && !strings.Contains(line, "_bucket")) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// diagnose logs, after a load, what its payments' workflows went through
// (event types over a sample of 40 of them) and writes the metrics of the
// first worker and api next to the stack's logs.
func diagnose(ctx context.Context, c client.Client, dir string, d *stack.Deployment, l loadResult, logger *slog.Logger) {
	var sent []*benchPayment
	for _, p := range l.pays {
		if p.sent {
			sent = append(sent, p)
		}
	}
	var ids []string
	for i := 0; i < len(sent) && len(ids) < 40; i += max(1, len(sent)/40) {
		ids = append(ids, workflows.WorkflowID(sent[i].no))
	}
	stats := historyStats(ctx, c, ids)
	var parts []string
	for k, v := range stats {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(parts)
	logger.Info("history of sampled payments", "label", l.Label, "workflows", len(ids), "events", strings.Join(parts, " "))
	for process, url := range map[string]string{"worker": "http://" + d.Workers[0].Addr + "/metrics", "api": d.APIURLs[0] + "/metrics"} {
		name := filepath.Join(dir, "logs", "metrics-"+strings.ReplaceAll(l.Label, " ", "-")+"-"+process+".txt")
		_ = os.WriteFile(name, []byte(scrapeMetrics(ctx, url)), 0o644)
	}
}
