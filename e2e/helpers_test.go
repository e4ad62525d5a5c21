package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

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

// workflowState asks the order's running workflow for its state.
func workflowState(t *testing.T, no string) workflows.State {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := st.tc.QueryWorkflow(ctx, workflows.WorkflowID(no), "", workflows.QueryState)
	if err != nil {
		t.Fatalf("query workflow %s: %v", no, err)
	}
	var s workflows.State
	if err := v.Get(&s); err != nil {
		t.Fatal(err)
	}
	return s
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
