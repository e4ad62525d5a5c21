package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay"
	"github.com/payflow/payflow/workflows"
)

// The two tables from error to HTTP answer: updateErrors (the order
// workflow's refusals of an update) and rejections (the notification
// parsers' errors). Each is checked entry by entry against what
// docs/interface.md promises, written out again here, and through every
// handler that uses it; an error neither table lists is answered in our
// own words, never with its text.

// wantUpdateStatus is the HTTP status docs/interface.md gives each of the
// workflow's refusals.
var wantUpdateStatus = map[string]int{
	workflows.ErrTypeAlreadyPaid:        http.StatusConflict,           // close of a paid order
	workflows.ErrTypeInReview:           http.StatusConflict,           // close of an order in REVIEW
	workflows.ErrTypeNotInReview:        http.StatusConflict,           // resolve of an order not in REVIEW
	workflows.ErrTypeCannot:             http.StatusConflict,           // accept_paid without a transaction
	workflows.ErrTypeRefundConflict:     http.StatusConflict,           // out_refund_no reused
	workflows.ErrTypeNotRefundable:      http.StatusConflict,           // not PAID, nothing left, 50 refunds, too much
	workflows.ErrTypeNoOrder:            http.StatusNotFound,           // unknown order
	workflows.ErrTypeBadRequest:         http.StatusBadRequest,         // the update's validator
	workflows.ErrTypeRefundsUnavailable: http.StatusNotImplemented,     // no API v3 credentials
	workflows.ErrTypeNotOwned:           http.StatusServiceUnavailable, // the run does not own the order yet: retry
}

func TestUpdateErrorsTable(t *testing.T) {
	if !maps.Equal(updateErrors, wantUpdateStatus) {
		t.Errorf("updateErrors = %v,\nwant %v", updateErrors, wantUpdateStatus)
	}
	// Every refusal the workflows package declares has an answer: a new
	// ErrType without one would reach clients as a 503 "retry".
	for _, typ := range workflowErrTypes(t) {
		if _, ok := updateErrors[typ]; !ok {
			t.Errorf("workflows declares the refusal %q, which updateErrors does not map", typ)
		}
	}
	for typ, status := range wantUpdateStatus {
		msg := "the workflow's words for " + typ
		// As the gateway returns it: wrapped, the refusal inside.
		err := fmt.Errorf("update close of payment/X: %w", temporal.NewNonRetryableApplicationError(msg, typ, nil))
		got, gotMsg, ok := updateError(err)
		if !ok || got != status || gotMsg != msg {
			t.Errorf("%s: updateError = %d %q %v, want %d %q", typ, got, gotMsg, ok, status, msg)
		}
	}
}

// workflowErrTypes are the values of the ErrType… constants declared in
// package workflows.
func workflowErrTypes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../workflows/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("workflows sources: %v", err)
	}
	var types []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "ErrType") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s is not a string literal", id.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					types = append(types, v)
				}
			}
		}
	}
	if len(types) < len(wantUpdateStatus) {
		t.Fatalf("found only %q in ../workflows", types)
	}
	return types
}

// updateEndpoints are the requests answered from an update of the order's
// workflow, each on an order in the status that lets it reach the update.
var updateEndpoints = []struct {
	name, update, path, body string
	status                   payment.Status
}{
	{"close", workflows.UpdateClose, "/orders/SEAMERR001/close", "", payment.StatusPending},
	{"refund", workflows.UpdateRefund, "/orders/SEAMERR001/refunds", `{"out_refund_no":"RF1","amount_fen":1}`, payment.StatusPaid},
	{"resolve", workflows.UpdateResolve, "/orders/SEAMERR001/resolve", `{"action":"close","operator":"op","reason":"r"}`, payment.StatusReview},
}

// Every refusal, through every handler that asks an update: the table's
// status, the workflow's message as the whole answer, nothing else done.
func TestUpdateRefusalsThroughHandlers(t *testing.T) {
	for _, ep := range updateEndpoints {
		for typ, status := range wantUpdateStatus {
			t.Run(ep.name+" "+typ, func(t *testing.T) {
				f := newSeam()
				f.st.put("SEAMERR001", ep.status, 100)
				msg := "the workflow's words for " + typ
				f.tc.answers[ep.update] = refuse(typ, msg)
				w := f.serve(http.MethodPost, ep.path, ep.body)
				var e map[string]string
				if w.Code != status || json.Unmarshal(w.Body.Bytes(), &e) != nil || len(e) != 1 || e["error"] != msg {
					t.Fatalf("answer %d %s, want %d {\"error\":%q}", w.Code, w.Body, status, msg)
				}
				if len(f.tc.calls) != 1 || !strings.HasPrefix(f.tc.calls[0], "update payment/SEAMERR001 "+ep.update) || len(f.st.writes) != 0 {
					t.Errorf("Temporal %q, store changes %q", f.tc.calls, f.st.writes)
				}
			})
		}
	}
}

// An error the table does not list is a failure of ours or of Temporal's:
// 503 in our words, never its text, type or cause.
func TestUnlistedUpdateErrorsAreNotLeaked(t *testing.T) {
	unlisted := map[string]error{
		"application error of another type":    temporal.NewApplicationError(internalDetail, "SomethingNew"),
		"application error of no type":         temporal.NewNonRetryableApplicationError(internalDetail, "", nil),
		"an activity's type":                   temporal.NewNonRetryableApplicationError(internalDetail, "OrderPaid", nil),
		"a refusal's type, in another case":    temporal.NewNonRetryableApplicationError(internalDetail, strings.ToLower(workflows.ErrTypeNoOrder), nil),
		"a listed type, as the cause of a new": temporal.NewApplicationErrorWithCause(internalDetail, "Wrapper", temporal.NewNonRetryableApplicationError("inner", workflows.ErrTypeNoOrder, nil)),
		"plain error":                          errors.New(internalDetail),
		"deadline":                             fmt.Errorf("%s: %w", internalDetail, context.DeadlineExceeded),
		"Temporal unavailable":                 serviceerror.NewUnavailable(internalDetail),
		"canceled":                             temporal.NewCanceledError(internalDetail),
	}
	for name, uerr := range unlisted {
		if _, _, ok := updateError(fmt.Errorf("update x: %w", uerr)); ok {
			t.Errorf("%s: updateError maps it", name)
		}
		for _, ep := range updateEndpoints {
			t.Run(name+" "+ep.name, func(t *testing.T) {
				f := newSeam()
				f.st.put("SEAMERR001", ep.status, 100)
				f.tc.answers[ep.update] = func([]any) (any, error) { return nil, uerr }
				w := f.serve(http.MethodPost, ep.path, ep.body)
				body := w.Body.String()
				var e map[string]string
				if w.Code != http.StatusServiceUnavailable || json.Unmarshal(w.Body.Bytes(), &e) != nil || len(e) != 1 || e["error"] == "" {
					t.Fatalf("answer %d %s, want 503 {\"error\"}", w.Code, body)
				}
				if strings.Contains(body, internalDetail) || strings.Contains(body, "SomethingNew") || strings.Contains(body, "inner") {
					t.Errorf("the answer leaks the error: %s", body)
				}
			})
		}
	}
}

// wantRejections is what docs/interface.md promises for each parser error:
// 401 for a signature we cannot trust, 403 for another merchant's message,
// 400 for anything else malformed; never 5xx (WeChat's retries would not
// help). The label is the reason counted in
// payflow_notifications_rejected_total.
type rejectionWant struct {
	err    error
	status int
	label  string
	msg    string
}

var wantRejections = []rejectionWant{
	{wechatpay.ErrProbe, http.StatusUnauthorized, "probe", "probe signature"},
	{wechatpay.ErrStaleTimestamp, http.StatusUnauthorized, "stale", "timestamp outside the 5-minute window"},
	{wechatpay.ErrUnknownKey, http.StatusUnauthorized, "unknown_key", "unknown Wechatpay-Serial"},
	{wechatpay.ErrMissingSign, http.StatusUnauthorized, "signature", "missing sign"},
	{wechatpay.ErrBadSignature, http.StatusUnauthorized, "signature", "invalid signature"},
	{wechatpay.ErrUnsupportedSignType, http.StatusBadRequest, "malformed", "unsupported signature type"},
	{wechatpay.ErrDecrypt, http.StatusBadRequest, "decrypt", "could not be decrypted with this merchant's key"},
	{wechatpay.ErrForeign, http.StatusForbidden, "foreign_id", "appid or mch_id is not this merchant's"},
	{wechatpay.ErrMalformed, http.StatusBadRequest, "malformed", "malformed notification"},
}

func TestNotifyRejectionsTable(t *testing.T) {
	if len(rejections) != len(wantRejections) {
		t.Errorf("rejections has %d entries, want %d", len(rejections), len(wantRejections))
	}
	for _, r := range rejections {
		i := slices.IndexFunc(wantRejections, func(w rejectionWant) bool { return w.err == r.err })
		if i < 0 {
			t.Errorf("rejections maps %v, which no test expects", r.err)
			continue
		}
		if w := wantRejections[i]; r.v.status != w.status || r.v.label != w.label || r.v.msg != w.msg {
			t.Errorf("%v: %d %s %q, want %d %s %q", r.err, r.v.status, r.v.label, r.v.msg, w.status, w.label, w.msg)
		}
		if r.v.status < 400 || r.v.status > 499 {
			t.Errorf("%v is answered %d: bad input must be 4xx", r.err, r.v.status)
		}
	}
}

// notifyPaths are the two notify endpoints and how each answers a failure.
var notifyPaths = []struct{ version, path string }{{"v2", "/wechatpay/notify"}, {"v3", "/wechatpay/v3/notify"}}

// notifyFailure checks a notify answer: status, the v2 XML or v3 JSON
// failure shape carrying msg, nothing handed over or audited, and the
// rejection counted under label.
func notifyFailure(t *testing.T, f *seam, version string, w *httptest.ResponseRecorder, status int, label, msg string) {
	t.Helper()
	res, body := w.Result(), w.Body.String()
	if res.StatusCode != status {
		t.Fatalf("%s: status %d, want %d: %s", version, res.StatusCode, status, body)
	}
	if strings.Contains(body, internalDetail) {
		t.Errorf("%s: the answer leaks the error: %s", version, body)
	}
	if version == "v2" {
		v2Answers("FAIL", msg)(t, f, []byte(body))
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
			t.Errorf("v2 Content-Type %q", ct)
		}
	} else {
		v3Fails(msg)(t, f, []byte(body))
	}
	var asked []string // only a verified notification is handed over
	if label == "unrecorded" {
		asked = []string{"handoff N-pay"}
	}
	if !slices.Equal(f.st.calls, asked) {
		t.Errorf("%s: the store and the handoff were asked %q, want %q", version, f.st.calls, asked)
	}
	if len(f.st.writes) != 0 {
		t.Errorf("%s: a rejected notification changed %q", version, f.st.writes)
	}
	if got := f.metric(metrics.NotificationsRejectedName, map[string]string{"version": version, "reason": label}); got != 1 {
		t.Errorf("%s: rejected{reason=%s} = %v, want 1", version, label, got)
	}
	if got := f.metric(metrics.NotificationsReceivedName, map[string]string{"version": version}); got != 1 {
		t.Errorf("%s: received = %v, want 1", version, got)
	}
}

// Every entry of the table, through both notify endpoints, with the error
// wrapped as a parser wraps it.
func TestNotifyRejectionsThroughHandlers(t *testing.T) {
	for _, w := range wantRejections {
		for _, np := range notifyPaths {
			t.Run(np.version+" "+w.label+" "+w.err.Error(), func(t *testing.T) {
				f := newSeam()
				f.v2.err = fmt.Errorf("parse: %w: %s", w.err, internalDetail)
				f.v3.err = f.v2.err
				rec := f.serve(http.MethodPost, np.path, "<xml/>")
				notifyFailure(t, f, np.version, rec, w.status, w.label, w.msg)
			})
		}
	}
}

// The first entry that matches wins, so an error that matches several is
// answered by the most specific; an error no entry matches is malformed
// input, in our words.
func TestNotifyRejectionsPrecedenceAndUnlisted(t *testing.T) {
	for _, tc := range []struct {
		name          string
		err           error
		status        int
		label, msg    string
		parserMissing bool
		handoffFails  bool
	}{
		{"a probe is a probe, not a bad signature", errors.Join(wechatpay.ErrBadSignature, wechatpay.ErrProbe), http.StatusUnauthorized, "probe", "probe signature", false, false},
		{"a foreign message that is also malformed", fmt.Errorf("%w: %w", wechatpay.ErrMalformed, wechatpay.ErrForeign), http.StatusForbidden, "foreign_id", "not this merchant's", false, false},
		{"an answer that does not parse", wechatpay.ErrBadAnswer, http.StatusBadRequest, "malformed", "malformed notification", false, false},
		{"an unlisted error", errors.New(internalDetail), http.StatusBadRequest, "malformed", "malformed notification", false, false},
		{"an unlisted wechatpay error", fmt.Errorf("%w: %s", wechatpay.ErrConfig, internalDetail), http.StatusBadRequest, "malformed", "malformed notification", false, false},
		{"no parser configured", nil, http.StatusServiceUnavailable, "unconfigured", "this API version is not configured", true, false},
		{"verified but not recorded: 5xx, WeChat retries", nil, http.StatusServiceUnavailable, "unrecorded", "could not record the notification, retry later", false, true},
	} {
		for _, np := range notifyPaths {
			t.Run(np.version+" "+tc.name, func(t *testing.T) {
				f := newSeam()
				n := payment.Notification{ID: "N-pay", OutTradeNo: "SEAMERR002", TransactionID: "4200", AmountFen: 1, Kind: payment.KindPayment}
				f.v2.n, f.v3.n, f.v2.err, f.v3.err = n, n, tc.err, tc.err
				if tc.parserMissing {
					f.srv.V2, f.srv.V3 = nil, nil
				}
				if tc.handoffFails {
					f.handoff.fail = errors.New(internalDetail)
				}
				rec := f.serve(http.MethodPost, np.path, "<xml/>")
				notifyFailure(t, f, np.version, rec, tc.status, tc.label, tc.msg)
			})
		}
	}
}

// Every reason the api answers FAIL with has its series from the start
// (metrics.RejectReasons), so that the alert on its rate sees the first.
func TestRejectReasonsArePreCreated(t *testing.T) {
	for _, r := range []string{reasonSignature, reasonStale, reasonProbe, reasonUnknownKey, reasonForeign,
		reasonMalformed, reasonDecrypt, reasonUnrecorded, reasonUnconfigured} {
		if !slices.Contains(metrics.RejectReasons, r) {
			t.Errorf("reason %q is not in metrics.RejectReasons", r)
		}
	}
}
