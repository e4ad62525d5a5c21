package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// The fakes of this file stand for everything the api talks to, and
// record all of it, so that a test can say what a request changed: the
// store (every call, and the writes that took effect), Temporal (every
// start, signal and update, with the update's answer scripted per test),
// the notification parsers and the handoff.

// seamNow is the api's clock in these tests.
var seamNow = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// Markers that must never reach a client: the text of an internal error,
// and a payer's openid.
const (
	internalDetail = "INTERNAL-DETAIL-db-password-in-dsn"
	seamOpenID     = "oSEAM-payer-openid-never-shown"
)

// seamStore is the api's store: orders, refunds and inbox rows in maps,
// with failures to inject. calls lists every call (a bad request must make
// none), writes the changes that took effect.
type seamStore struct {
	mu      sync.Mutex
	orders  map[string]payment.Order
	refunds map[string]payment.Refund // by out_trade_no + "/" + out_refund_no
	inbox   []store.InboxRow
	calls   []string
	writes  []string

	failCreate, failGet, failRefund, failInbox, failRedrive, failAudit, failPing error
}

func newSeamStore() *seamStore {
	return &seamStore{orders: map[string]payment.Order{}, refunds: map[string]payment.Refund{}}
}

func (f *seamStore) call(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// put stores an order in status, with a log row per status it went
// through as the store would have written it.
func (f *seamStore) put(no string, status payment.Status, amount int64) payment.Order {
	f.mu.Lock()
	defer f.mu.Unlock()
	exp := seamNow.Add(30 * time.Minute)
	o := payment.Order{
		OutTradeNo: no, AmountFen: amount, Currency: payment.DefaultCurrency, Description: "tea", Status: status,
		CreatedAt: seamNow.Add(-time.Hour), UpdatedAt: seamNow.Add(-time.Minute), ExpiresAt: &exp, OpenID: seamOpenID,
		Logs:          []payment.Log{{ToStatus: payment.StatusPending, Remarks: "order created", CreatedAt: seamNow.Add(-time.Hour)}},
		Notifications: []payment.NotificationRecord{}, Refunds: []payment.Refund{},
	}
	if status != payment.StatusPending {
		o.Logs = append(o.Logs, payment.Log{FromStatus: payment.StatusPending, ToStatus: status, Remarks: "to " + string(status), CreatedAt: seamNow.Add(-time.Minute)})
	}
	if status == payment.StatusPaid || status == payment.StatusReview || status == payment.StatusRefunded {
		paid := seamNow.Add(-30 * time.Minute)
		o.TransactionID, o.PaidAt, o.PaidFen = "4200000000"+no, &paid, amount
	}
	f.orders[no] = o
	return o
}

// setStatus is what a workflow does to the order while the api waits.
func (f *seamStore) setStatus(no string, status payment.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := f.orders[no]
	o.Logs = append(o.Logs, payment.Log{FromStatus: o.Status, ToStatus: status, Remarks: "to " + string(status), CreatedAt: seamNow})
	o.Status = status
	f.orders[no] = o
}

func (f *seamStore) putRefund(r payment.Refund) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refunds[r.OutTradeNo+"/"+r.OutRefundNo] = r
}

func (f *seamStore) CreateOrder(_ context.Context, o store.NewOrder) (payment.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("create %s", o.OutTradeNo)
	if f.failCreate != nil {
		return payment.Order{}, f.failCreate
	}
	if _, ok := f.orders[o.OutTradeNo]; ok {
		return payment.Order{}, fmt.Errorf("create order %s: %w", o.OutTradeNo, store.ErrDuplicate)
	}
	if o.Currency == "" {
		o.Currency = payment.DefaultCurrency
	}
	var exp *time.Time
	if !o.ExpiresAt.IsZero() {
		e := o.ExpiresAt.UTC()
		exp = &e
	}
	order := payment.Order{
		OutTradeNo: o.OutTradeNo, AmountFen: o.AmountFen, Currency: o.Currency, Description: o.Description,
		Status: payment.StatusPending, CreatedAt: seamNow, UpdatedAt: seamNow, ExpiresAt: exp, TradeType: o.TradeType, OpenID: o.OpenID,
		Logs:          []payment.Log{{ToStatus: payment.StatusPending, Remarks: "order created", CreatedAt: seamNow}},
		Notifications: []payment.NotificationRecord{}, Refunds: []payment.Refund{},
	}
	f.orders[o.OutTradeNo] = order
	f.writes = append(f.writes, "create "+o.OutTradeNo)
	return order, nil
}

func (f *seamStore) GetOrder(_ context.Context, no string) (payment.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("get %s", no)
	if f.failGet != nil {
		return payment.Order{}, f.failGet
	}
	o, ok := f.orders[no]
	if !ok {
		return payment.Order{}, fmt.Errorf("get order %s: %w", no, store.ErrNotFound)
	}
	return o, nil
}

func (f *seamStore) GetRefund(_ context.Context, mchID, no, refundNo string) (payment.Refund, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("get refund %s %s/%s", mchID, no, refundNo)
	if f.failRefund != nil {
		return payment.Refund{}, f.failRefund
	}
	r, ok := f.refunds[no+"/"+refundNo]
	if !ok {
		return payment.Refund{}, store.ErrRefundNotFound
	}
	return r, nil
}

func (f *seamStore) InboxRows(_ context.Context, state string, limit int) ([]store.InboxRow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("inbox %s %d", state, limit)
	if f.failInbox != nil {
		return nil, f.failInbox
	}
	rows := []store.InboxRow{}
	for _, r := range f.inbox {
		if r.State == state && len(rows) < limit {
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func (f *seamStore) RedriveInbox(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("redrive %s", id)
	if f.failRedrive != nil {
		return f.failRedrive
	}
	for i, r := range f.inbox {
		if r.ID == id && r.State == "parked" {
			f.inbox[i].State, f.inbox[i].Attempts = "pending", 0
			f.writes = append(f.writes, "redrive "+id)
			return nil
		}
	}
	return fmt.Errorf("redrive inbox %s: %w", id, store.ErrNotParked)
}

func (f *seamStore) AuditExamined(_ context.Context, n payment.Notification, outcome payment.NotificationOutcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.call("audit %s", n.ID)
	if f.failAudit != nil {
		return f.failAudit
	}
	f.writes = append(f.writes, "audit "+n.ID+" "+string(outcome))
	return nil
}

func (f *seamStore) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failPing
}

// seamAcceptor is the notification handoff; what it takes is a write.
type seamAcceptor struct {
	st   *seamStore
	fail error
}

func (a *seamAcceptor) Accept(_ context.Context, n payment.Notification) (payment.NotificationOutcome, error) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	a.st.call("handoff %s", n.ID)
	if a.fail != nil {
		return "", a.fail
	}
	a.st.writes = append(a.st.writes, "handoff "+n.ID)
	return payment.NotifyRecorded, nil
}

// seamParser is a notification parser that answers as told.
type seamParser struct {
	mu    sync.Mutex
	n     payment.Notification
	err   error
	calls int
}

func (p *seamParser) Parse(_ http.Header, _ []byte) (payment.Notification, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return p.n, p.err
}

// answer is how the order's workflow answers an update: its result, or
// its error (a typed refusal, or a timeout).
type answer func(args []any) (any, error)

// seamTemporal is the Temporal client behind the api and its gateway. An
// update without a scripted answer does not finish in time, like an update
// no worker takes.
type seamTemporal struct {
	mu         sync.Mutex
	calls      []string // "start ID", "signal ID NAME", "update ID NAME [UPDATE-ID]"
	starts     []client.StartWorkflowOptions
	updateArgs [][]any
	answers    map[string]answer // by update name

	failStart, failSignal, failHealth error
}

func (f *seamTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "start "+o.ID)
	f.starts = append(f.starts, o)
	return nil, f.failStart
}

func (f *seamTemporal) SignalWithStartWorkflow(_ context.Context, id, signal string, _ any, o client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "signal "+id+" "+signal)
	f.starts = append(f.starts, o)
	return nil, f.failSignal
}

// seamStartOp is the start half of an Update-With-Start.
type seamStartOp struct {
	opts client.StartWorkflowOptions
}

func (*seamStartOp) Get(context.Context) (client.WorkflowRun, error) { return nil, nil }

func (f *seamTemporal) NewWithStartWorkflowOperation(o client.StartWorkflowOptions, _ any, _ ...any) client.WithStartWorkflowOperation {
	return &seamStartOp{opts: o}
}

func (f *seamTemporal) UpdateWithStartWorkflow(ctx context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	op := o.StartWorkflowOperation.(*seamStartOp)
	f.mu.Lock()
	call := "update " + op.opts.ID + " " + o.UpdateOptions.UpdateName
	if o.UpdateOptions.UpdateID != "" {
		call += " " + o.UpdateOptions.UpdateID
	}
	f.calls = append(f.calls, call)
	f.starts = append(f.starts, op.opts)
	f.updateArgs = append(f.updateArgs, o.UpdateOptions.Args)
	reply := f.answers[o.UpdateOptions.UpdateName]
	f.mu.Unlock()
	if reply == nil {
		return nil, fmt.Errorf("%w (no worker took the update)", context.DeadlineExceeded)
	}
	res, err := reply(o.UpdateOptions.Args)
	return &seamHandle{res: res, err: err}, nil
}

func (f *seamTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failHealth != nil {
		return nil, f.failHealth
	}
	return &client.CheckHealthResponse{}, nil
}

// seamHandle hands an update's result over as Temporal does: encoded, and
// decoded into the caller's value; or the update's failure.
type seamHandle struct {
	client.WorkflowUpdateHandle
	res any
	err error
}

func (h *seamHandle) Get(_ context.Context, ptr any) error {
	if h.err != nil {
		return h.err
	}
	b, err := json.Marshal(h.res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, ptr)
}

// seam is an api.Server on the fakes above.
type seam struct {
	srv     *Server
	st      *seamStore
	tc      *seamTemporal
	handoff *seamAcceptor
	v2, v3  *seamParser
	reg     *prometheus.Registry
	logs    *bytes.Buffer
}

func newSeam() *seam {
	st, tc := newSeamStore(), &seamTemporal{answers: map[string]answer{}}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	f := &seam{st: st, tc: tc, handoff: &seamAcceptor{st: st}, v2: &seamParser{}, v3: &seamParser{}, reg: reg, logs: &bytes.Buffer{}}
	f.srv = &Server{
		Orders: st, Temporal: tc, Gateway: &gateway.Gateway{Temporal: tc, TaskQueue: "payments", Metrics: m},
		AppID: testAppID, MchID: testMchID, Handoff: f.handoff, V2: f.v2, V3: f.v3,
		Logger: slog.New(slog.NewJSONHandler(f.logs, nil)), Now: func() time.Time { return seamNow },
		Metrics: m, MetricsHandler: metrics.Handler(reg),
		OrderTimeout: 30 * time.Minute, CanPrepay: true,
	}
	return f
}

// serve sends one request through the whole handler (router and guard).
func (f *seam) serve(method, target, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	w := httptest.NewRecorder()
	f.srv.Handler().ServeHTTP(w, r)
	return w
}

// metric is the value of the counter name with exactly these labels; -1
// when there is no such series.
func (f *seam) metric(name string, labels map[string]string) float64 {
	mfs, err := f.reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
