package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
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
	classReview  = "review"  // REVIEW the run did not arrange, with the reason from its log: a failure
	classBadLog  = "badlog"  // invariant.BadRecord: paid, but its record does not say so exactly once from PENDING
	// classArranged: a REVIEW the run arranged (amount mismatch, paid after
	// close), reached once, with WeChat's transaction and what it took, and
	// never PAID (REFUNDED since, by the refund that settles it).
	classArranged = "arranged"
	// classUnreviewed: an arranged REVIEW that did not happen as it must.
	classUnreviewed = "unreviewed"
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
// stuck (PENDING with its workflow still running) or lost. An order the
// run sent to REVIEW on purpose is judged by arranged.
func (c *checker) judge(ctx context.Context, pl plan, txid string) (verdict, error) {
	no := pl.OutTradeNo
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
	if pl.Review != "" {
		return arranged(v, o, pl, txid), nil
	}
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

// arranged judges an order the run sent to REVIEW on purpose: it must be
// in REVIEW (or REFUNDED since, from REVIEW) by WeChat's transaction, with
// what WeChat took as paid_fen, one log row into REVIEW and none to PAID.
func arranged(v verdict, o payment.Order, pl plan, txid string) verdict {
	var into []payment.Log
	for _, l := range o.Logs {
		if l.ToStatus == payment.StatusReview && l.FromStatus != payment.StatusReview {
			into = append(into, l)
		}
	}
	v.Class = classUnreviewed
	switch {
	case len(invariant.PaidLogs(o)) > 0:
		v.Detail = pl.Review + ", yet PAID: " + invariant.PaidLogs(o)[0].Remarks
	case o.Status != payment.StatusReview && o.Status != payment.StatusRefunded:
		v.Detail = pl.Review + ", yet " + string(o.Status)
	case len(into) != 1:
		v.Detail = fmt.Sprintf("%s: %d log rows into REVIEW", pl.Review, len(into))
	case o.TransactionID != txid:
		v.Detail = fmt.Sprintf("%s: in REVIEW with transaction %q, WeChat's is %s", pl.Review, o.TransactionID, txid)
	case o.PaidFen != pl.PaidFen:
		v.Detail = fmt.Sprintf("%s: paid_fen %d, WeChat took %d", pl.Review, o.PaidFen, pl.PaidFen)
	default:
		v.Class, v.Detail = classArranged, pl.Review+": "+into[0].Remarks
	}
	return v
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
	Probes        []struct {
		Accepted bool `json:"accepted"`
	} `json:"probes"`
	Deliveries []struct {
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

// quiet is what the wait for quiescence looks at.
type quiet struct {
	Pending    int // paid orders still PENDING (or missing)
	Processing int // refunds PROCESSING here
	Abnormal   int // refunds ABNORMAL here
	Unexamined int // notifications acknowledged, not yet examined
	Retrying   int // notifications (payments and refunds) WeChat is still sending
	// OpenAtWeChat: refunds WeChat still has PROCESSING or ABNORMAL (the
	// sandbox moves every one on: ABNORMAL then SUCCESS or CLOSED).
	OpenAtWeChat int

	unexamined []string // a few of the unexamined notifications, described
}

func (q quiet) done() bool {
	return q.Pending == 0 && q.Processing == 0 && q.Abnormal == 0 && q.Unexamined == 0 && q.Retrying == 0 && q.OpenAtWeChat == 0
}

func (q quiet) String() string {
	s := fmt.Sprintf("%d paid orders PENDING, %d refunds PROCESSING and %d ABNORMAL here, %d open at WeChat, %d notifications unexamined, %d deliveries still retrying",
		q.Pending, q.Processing, q.Abnormal, q.OpenAtWeChat, q.Unexamined, q.Retrying)
	if len(q.unexamined) > 0 {
		s += " (unexamined: " + strings.Join(q.unexamined, "; ") + ")"
	}
	return s
}

// look reads the database, and WeChat when the database is quiet.
func (c *checker) look(ctx context.Context, p *payer, outs []outcome, nos []string) (quiet, error) {
	var q quiet
	var err error
	if q.Pending, err = c.pending(ctx, nos); err != nil {
		return q, err
	}
	err = c.db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'PROCESSING'), count(*) FILTER (WHERE status = 'ABNORMAL') FROM refunds`).
		Scan(&q.Processing, &q.Abnormal)
	if err != nil {
		return q, err
	}
	rows, err := c.db.Query(ctx, `SELECT coalesce(out_trade_no, ''), kind, outcome, received_at FROM notifications
		WHERE examined_at IS NULL AND kind IS DISTINCT FROM 'other' ORDER BY received_at`)
	if err != nil {
		return q, err
	}
	for rows.Next() {
		var no, kind, outcome string
		var at time.Time
		if err := rows.Scan(&no, &kind, &outcome, &at); err != nil {
			rows.Close()
			return q, err
		}
		q.Unexamined++
		if len(q.unexamined) < 5 {
			q.unexamined = append(q.unexamined, fmt.Sprintf("%s %s %s, received %s ago", no, kindName(payment.Kind(kind)), outcome, time.Since(at).Round(time.Second)))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return q, err
	}
	if !q.done() {
		return q, nil
	}
	_, ds, err := p.simTrades(ctx, outs)
	if err != nil {
		return q, err
	}
	q.Retrying = ds.Undone
	_, views, err := p.simRefunds(ctx)
	if err != nil {
		return q, err
	}
	for _, v := range views {
		for _, d := range v.Deliveries {
			if !d.Done {
				q.Retrying++
			}
		}
		if v.Status == string(payment.RefundProcessing) || v.Status == string(payment.RefundAbnormal) {
			q.OpenAtWeChat++
		}
	}
	return q, nil
}

// quiesce waits until no paid order is PENDING, no refund is PROCESSING or
// ABNORMAL here or at WeChat, every acknowledged notification was examined
// and WeChat has no notification left to retry, or until ctx ends. It
// reports whether it got there. (A refund still ABNORMAL on both sides when
// the wait ends is then judged knowingly ABNORMAL.)
func quiesce(ctx context.Context, c *checker, p *payer, outs []outcome, progress func(string)) bool {
	var nos []string
	for _, o := range outs {
		if o.TransactionID != "" {
			nos = append(nos, o.OutTradeNo)
		}
	}
	last := time.Time{}
	for {
		q, err := c.look(ctx, p, outs, nos)
		if err == nil && q.done() {
			return true
		}
		if time.Since(last) > 10*time.Second {
			msg := "waiting: " + q.String()
			if err != nil {
				msg += fmt.Sprintf(" (error: %v)", err)
			}
			progress(msg)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Second):
		}
	}
}
