package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/payflow/payflow/internal/invariant"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

// verdict is what the checks found for one paid order.
type verdict struct {
	OutTradeNo string
	Status     string // the order's status in our database ("" if no row)
	Class      string // one of the class* constants
	Detail     string
}

const (
	classOK      = "ok"      // paid once by the sim's transaction (invariant.PaidOnce)
	classLost    = "lost"    // paid at the sim, not PAID here, nothing left working on it
	classDoubled = "doubled" // invariant.Doubled: more than one PAID log row, or PAID by a transaction the sim did not issue
	classStuck   = "stuck"   // PENDING with its workflow still running after the wait
	classReview  = "review"  // REVIEW, with the reason from its log
	classBadLog  = "badlog"  // invariant.BadRecord: paid, but its record does not say so exactly once from PENDING
)

// checker reads our database and Temporal directly.
type checker struct {
	db    *pgxpool.Pool
	store *store.Store // the order as GET /orders/{no} shows it
	tc    client.Client
}

// pending counts the orders among nos still PENDING (or missing).
func (c *checker) pending(ctx context.Context, nos []string) (int, error) {
	var n int
	err := c.db.QueryRow(ctx, `SELECT $2::int - count(*) FILTER (WHERE status <> 'PENDING') FROM orders WHERE out_trade_no = ANY($1)`,
		nos, len(nos)).Scan(&n)
	return n, err
}

// judge checks one order the sim says was paid by txid, with the shared
// paid-once check (internal/invariant); an order not paid is in REVIEW,
// stuck (PENDING with its workflow still running) or lost.
func (c *checker) judge(ctx context.Context, no, txid string) (verdict, error) {
	v := verdict{OutTradeNo: no}
	o, err := c.store.GetOrder(ctx, no)
	if errors.Is(err, store.ErrNotFound) {
		v.Class, v.Detail = classLost, "no order row"
		return v, nil
	}
	if err != nil {
		return v, err
	}
	v.Status = string(o.Status)
	err = invariant.PaidOnce(o, txid)
	var bad *invariant.Violation
	switch {
	case err == nil:
		v.Class = classOK
		return v, nil
	case !errors.As(err, &bad):
		return v, err
	}
	v.Detail = bad.Detail
	switch {
	case bad.Kind == invariant.Doubled:
		v.Class = classDoubled
	case bad.Kind == invariant.BadRecord:
		v.Class = classBadLog
	case o.Status == payment.StatusReview:
		v.Class = classReview
	case o.Status == payment.StatusPending:
		running, err := c.running(ctx, no)
		if err != nil {
			return v, err
		}
		if running {
			v.Class, v.Detail = classStuck, "PENDING, workflow running"
		} else {
			v.Class, v.Detail = classLost, "PENDING, no running workflow"
		}
	default:
		v.Class, v.Detail = classLost, string(o.Status)+": "+bad.Detail
	}
	return v, nil
}

func (c *checker) running(ctx context.Context, no string) (bool, error) {
	resp, err := c.tc.DescribeWorkflowExecution(ctx, workflows.WorkflowID(no), "")
	if err != nil {
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			return false, nil
		}
		return false, err
	}
	return resp.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// simTrade is the part of the sim's GET /sim/trades/{no} the tool reads.
type simTrade struct {
	TransactionID string `json:"transaction_id"`
	TradeState    string `json:"trade_state"`
	Queries       int    `json:"queries"`
	Prepays       int    `json:"prepays"`
	Deliveries    []struct {
		Attempts []struct {
			HTTPStatus int  `json:"http_status"`
			Accepted   bool `json:"accepted"`
		} `json:"attempts"`
		Done      bool `json:"done"`
		Delivered bool `json:"delivered"`
	} `json:"deliveries"`
}

// deliveryStats sums the sim's delivery attempts over the trades.
type deliveryStats struct {
	Deliveries, Delivered, Undone int
	Attempts, Refused             int // attempts not accepted (5xx, 502 from the proxy, network errors)
	Queries                       int // order queries the sim answered
}

func (p *payer) simTrades(ctx context.Context, outs []outcome) (map[string]simTrade, deliveryStats, error) {
	trades := make(map[string]simTrade)
	var ds deliveryStats
	for _, o := range outs {
		if o.TransactionID == "" {
			continue
		}
		var tr simTrade
		status, body, err := p.do(ctx, http.MethodGet, p.d.SimURL+"/sim/trades/"+o.OutTradeNo, nil, &tr)
		if err != nil {
			return nil, ds, err
		}
		if status != http.StatusOK {
			return nil, ds, fmt.Errorf("GET /sim/trades/%s: %d %s", o.OutTradeNo, status, body)
		}
		trades[o.OutTradeNo] = tr
		ds.Queries += tr.Queries
		for _, d := range tr.Deliveries {
			ds.Deliveries++
			if d.Delivered {
				ds.Delivered++
			}
			if !d.Done {
				ds.Undone++
			}
			for _, a := range d.Attempts {
				ds.Attempts++
				if !a.Accepted {
					ds.Refused++
				}
			}
		}
	}
	return trades, ds, nil
}

// quiesce waits until no paid order is PENDING and the sim has no delivery
// left to retry, or until ctx ends. It reports whether it got there.
func quiesce(ctx context.Context, c *checker, p *payer, outs []outcome, progress func(string)) bool {
	var nos []string
	for _, o := range outs {
		if o.TransactionID != "" {
			nos = append(nos, o.OutTradeNo)
		}
	}
	last := time.Time{}
	for {
		n, err := c.pending(ctx, nos)
		_, ds, err2 := p.simTrades(ctx, outs)
		if err == nil && err2 == nil && n == 0 && ds.Undone == 0 {
			return true
		}
		if time.Since(last) > 10*time.Second {
			progress(fmt.Sprintf("waiting: %d orders PENDING, %d deliveries still retrying (errors: %v, %v)", n, ds.Undone, err, err2))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Second):
		}
	}
}
