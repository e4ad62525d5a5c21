package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/payflow/payflow/wechatpay/apiv2"
	"github.com/payflow/payflow/workflows"
)

func (d *deployment) postXML(t *testing.T, params map[string]string) (int, string) {
	t.Helper()
	return d.postRaw(t, string(apiv2.EncodeXML(params)))
}

func (d *deployment) postRaw(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(d.apiURL+"/wechatpay/notify", "text/xml", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// notificationsReceived counts the notification signals in the history of
// the order's current run: what reached its workflow, whether or not the
// run has had its first workflow task yet (a plain order's is delayed).
func notificationsReceived(t *testing.T, no string) int {
	t.Helper()
	n := 0
	for _, e := range runHistory(t, no, "") {
		if a := e.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalNotification {
			n++
		}
	}
	return n
}

// runHistory reads the events of a run of the order's workflow ("" : the
// current run).
func runHistory(t *testing.T, no, runID string) []*historypb.HistoryEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var events []*historypb.HistoryEvent
	it := st.tc.GetWorkflowHistory(ctx, workflows.WorkflowID(no), runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			t.Fatalf("history of %s: %v", no, err)
		}
		events = append(events, e)
	}
	return events
}

func countRequest(query string) *workflowservice.CountWorkflowExecutionsRequest {
	return &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query}
}

// doRaw sends body as it is and returns the status; a request to one of
// the apis under test carries that api's token.
func doRaw(t *testing.T, method, url, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func listRequest(query string) *workflowservice.ListWorkflowExecutionsRequest {
	return &workflowservice.ListWorkflowExecutionsRequest{Namespace: "default", Query: query}
}
