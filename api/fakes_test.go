package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/config"
	"github.com/payflow/payflow/gateway"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// fakeOrders is the store as the api sees it, recording every call. The
// embedded interface keeps it compiling when Orders grows; a method it
// does not implement panics, which a test notices.
type fakeOrders struct {
	Orders

	mu        sync.Mutex
	created   []store.NewOrder
	reads     []string
	deadlines []time.Duration // time left on each call's context
	orders    map[string]payment.Order
}

func newFakeOrders() *fakeOrders { return &fakeOrders{orders: map[string]payment.Order{}} }

func (f *fakeOrders) noteDeadline(ctx context.Context) {
	if d, ok := ctx.Deadline(); ok {
		f.deadlines = append(f.deadlines, time.Until(d))
	} else {
		f.deadlines = append(f.deadlines, 0)
	}
}

func (f *fakeOrders) CreateOrder(ctx context.Context, o store.NewOrder) (payment.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteDeadline(ctx)
	f.created = append(f.created, o)
	if _, ok := f.orders[o.OutTradeNo]; ok {
		return payment.Order{}, store.ErrDuplicate
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	exp := o.ExpiresAt
	order := payment.Order{
		OutTradeNo: o.OutTradeNo, AmountFen: o.AmountFen, Currency: o.Currency, Description: o.Description,
		Status: payment.StatusPending, CreatedAt: now, UpdatedAt: now, ExpiresAt: &exp, TradeType: o.TradeType, OpenID: o.OpenID,
		Logs: []payment.Log{}, Notifications: []payment.NotificationRecord{},
	}
	f.orders[o.OutTradeNo] = order
	return order, nil
}

func (f *fakeOrders) GetOrder(ctx context.Context, no string) (payment.Order, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noteDeadline(ctx)
	f.reads = append(f.reads, no)
	o, ok := f.orders[no]
	if !ok {
		return payment.Order{}, store.ErrNotFound
	}
	return o, nil
}

func (f *fakeOrders) Ping(context.Context) error { return nil }

// calls is how many times the api touched the store.
func (f *fakeOrders) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created) + len(f.reads)
}

// fakeTemporal records what the api asks of Temporal, itself and through
// the gateway. Updates fail: the tests here never prepay or close through
// a workflow.
type fakeTemporal struct {
	gateway.Client

	mu      sync.Mutex
	starts  []string
	signals []string
	updates []string
}

func (f *fakeTemporal) ExecuteWorkflow(_ context.Context, o client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, o.ID)
	return nil, nil
}

func (f *fakeTemporal) SignalWithStartWorkflow(_ context.Context, id, signal string, _ any, _ client.StartWorkflowOptions, _ any, _ ...any) (client.WorkflowRun, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, id+" "+signal)
	return nil, nil
}

func (f *fakeTemporal) NewWithStartWorkflowOperation(client.StartWorkflowOptions, any, ...any) client.WithStartWorkflowOperation {
	return nil
}

func (f *fakeTemporal) UpdateWithStartWorkflow(_ context.Context, o client.UpdateWithStartWorkflowOptions) (client.WorkflowUpdateHandle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates = append(f.updates, o.UpdateOptions.UpdateName)
	return nil, context.DeadlineExceeded
}

func (f *fakeTemporal) CheckHealth(context.Context, *client.CheckHealthRequest) (*client.CheckHealthResponse, error) {
	return &client.CheckHealthResponse{}, nil
}

func (f *fakeTemporal) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.starts) + len(f.signals) + len(f.updates)
}

// testServer is an api.Server on fakes, logging into logs.
func testServer(logs io.Writer, tokens ...string) (*Server, *fakeOrders, *fakeTemporal) {
	orders, tc := newFakeOrders(), &fakeTemporal{}
	s := &Server{
		Orders: orders, Temporal: tc, Gateway: &gateway.Gateway{Temporal: tc, TaskQueue: "payments"},
		AppID: "wx2421b1c4370ec43b", MchID: "10000100",
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Now:    func() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC) },
		MetricsHandler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "# metrics\n")
		}),
		OrderTimeout: 30 * time.Minute,
	}
	for _, t := range tokens {
		s.Tokens = append(s.Tokens, config.NewSecret(t))
	}
	return s, orders, tc
}

// do sends one request to the server's handler.
func do(h http.Handler, method, target, auth, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
