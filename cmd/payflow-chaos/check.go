package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

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
	classOK      = "ok"      // PAID by the sim's transaction, one PENDING→PAID log row
	classLost    = "lost"    // paid at the sim, not PAID here, nothing left working on it
	classDoubled = "doubled" // more than one PAID log row, or PAID by a transaction the sim did not issue
	classStuck   = "stuck"   // PENDING with its workflow still running after the wait
	classReview  = "review"  // REVIEW, with the reason from its log
	classBadLog  = "badlog"  // PAID, but its log does not say so exactly once from PENDING
)

type logRow struct {
	From, To, Remarks string
}

// checker reads our database and Temporal directly.
type checker struct {
	db *pgxpool.Pool
	tc client.Client
}

// pending counts the orders among nos still PENDING (or missing).
func (c *checker) pending(ctx context.Context, nos []string) (int, error) {
	var n int
	err := c.db.QueryRow(ctx, `SELECT $2::int - count(*) FILTER (WHERE status <> 'PENDING') FROM orders WHERE out_trade_no = ANY($1)`,
		nos, len(nos)).Scan(&n)
	return n, err
}

// judge checks one order the sim says was paid by txid.
func (c *checker) judge(ctx context.Context, no, txid string) (verdict, error) {
	v := verdict{OutTradeNo: no}
	var dbTxid string
	err := c.db.QueryRow(ctx, `SELECT status, coalesce(transaction_id, '') FROM orders WHERE out_trade_no = $1`, no).Scan(&v.Status, &dbTxid)
	if errors.Is(err, pgx.ErrNoRows) {
		v.Class, v.Detail = classLost, "no order row"
		return v, nil
	}
	if err != nil {
		return v, err
	}
	rows, err := c.db.Query(ctx, `SELECT from_status, to_status, remarks FROM order_logs WHERE out_trade_no = $1 ORDER BY id`, no)
	if err != nil {
		return v, err
	}
	logs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (logRow, error) {
		var l logRow
		err := r.Scan(&l.From, &l.To, &l.Remarks)
		return l, err
	})
	if err != nil {
		return v, err
	}
	var paid []logRow
	for _, l := range logs {
		if l.To == "PAID" {
			paid = append(paid, l)
		}
	}
	switch {
	case len(paid) > 1:
		v.Class, v.Detail = classDoubled, fmt.Sprintf("%d PAID log rows: %s", len(paid), describe(paid))
	case v.Status == "PAID" && dbTxid != txid:
		v.Class, v.Detail = classDoubled, fmt.Sprintf("PAID by %q, the sim's transaction is %q", dbTxid, txid)
	case v.Status == "PAID" && len(paid) == 0:
		v.Class, v.Detail = classBadLog, "PAID without a PAID log row"
	case v.Status == "PAID" && paid[0].From != "PENDING":
		v.Class, v.Detail = classBadLog, "PAID log row from "+paid[0].From
	case v.Status == "PAID" && !strings.Contains(paid[0].Remarks, txid):
		v.Class, v.Detail = classBadLog, "PAID log remarks do not name the transaction: "+paid[0].Remarks
	case v.Status == "PAID":
		v.Class = classOK
	case len(paid) == 1:
		v.Class, v.Detail = classBadLog, "a PAID log row but the order is "+v.Status
	case v.Status == "REVIEW":
		v.Class, v.Detail = classReview, lastTo(logs, "REVIEW")
	case v.Status == "PENDING":
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
		v.Class, v.Detail = classLost, v.Status+": "+lastTo(logs, v.Status)
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

func lastTo(logs []logRow, to string) string {
	for i := len(logs) - 1; i >= 0; i-- {
		if logs[i].To == to {
			return logs[i].Remarks
		}
	}
	return "no log row to " + to
}

func describe(ls []logRow) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s→%s %q", l.From, l.To, l.Remarks)
	}
	return b.String()
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
		status, body, err := p.do(ctx, http.MethodGet, p.st.SimURL+"/sim/trades/"+o.OutTradeNo, nil, &tr)
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
