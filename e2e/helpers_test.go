package e2e

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"go.temporal.io/api/workflowservice/v1"

	"github.com/payflow/payflow/wechatpay"
)

func postXML(t *testing.T, params map[string]string) (int, string) {
	t.Helper()
	return postRaw(t, string(wechatpay.EncodeV2XML(params)))
}

func postRaw(t *testing.T, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(st.apiURL+"/wechatpay/notify", "text/xml", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func countRequest(query string) *workflowservice.CountWorkflowExecutionsRequest {
	return &workflowservice.CountWorkflowExecutionsRequest{Namespace: "default", Query: query}
}
