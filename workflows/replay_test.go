package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs. A
// change to the workflow that would break payments already in flight fails
// here. history_v2_* and history_v3_* come from runs before the one-loop
// workflow (make run; temporal workflow show --output json); the
// history_oneloop_* ones from e2e's TestLongRunContinuesAsNew with
// RECORD_HISTORIES=$PWD/workflows/testdata: a run that continued as new,
// the run it continued into (carried state, then paid), and a refund.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/history_*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories in testdata (err %v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(PaymentWorkflow)
			if err := r.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
	}
}
