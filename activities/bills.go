package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/bill"
	"github.com/payflow/payflow/metrics"
	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/wechatpay"
)

// OrderActions are what the bill reconciliation asks of an order's
// workflow (payment/{out_trade_no}) about a difference. Every call is safe
// to repeat: the workflow applies each once.
type OrderActions interface {
	// ConfirmPayment, for paid_at_wechat_only: the order's workflow queries
	// WeChat and applies the answer (PAID, or REVIEW if it was closed).
	ConfirmPayment(ctx context.Context, outTradeNo, reason string) error
	// SendToReview, for paid_here_only and amount_mismatch: the order goes
	// to REVIEW with reason in its log; key makes the change happen once.
	SendToReview(ctx context.Context, outTradeNo, reason, key string) error
	// TrackRefund, for refund_unknown (recorded as merchant_portal, then
	// confirmed by refund query) and refund_status (queried again).
	TrackRefund(ctx context.Context, outTradeNo, outRefundNo, refundID string, amountFen int64, reason string) error
}

// ErrActionUnavailable is what an OrderActions returns (wrapped) when it
// cannot take that kind of action in this deployment. The difference is
// kept with a note and no action; a later run tries again.
var ErrActionUnavailable = errors.New("order action unavailable")

// BillSource is WeChat Pay's trade bill API (the v2 or v3 client).
type BillSource interface {
	LocateBill(ctx context.Context, date string) (wechatpay.BillLink, error)
	OpenBill(ctx context.Context, link wechatpay.BillLink) (io.ReadCloser, error)
}

// BillStore is the part of the store the bill activities use.
type BillStore interface {
	BeginBillRun(ctx context.Context, k store.BillRunKey, startedAt time.Time) error
	LoadBillStage(ctx context.Context, k store.BillRunKey, next func() (store.BillStageRow, error)) (int64, error)
	DiffBill(ctx context.Context, k store.BillRunKey, dayStart, dayEnd time.Time) (store.BillDiffResult, error)
	BillActionsPending(ctx context.Context, k store.BillRunKey, after int64, limit int) ([]store.BillDifference, error)
	RecordBillAction(ctx context.Context, id int64, action string, done bool) error
	FinishBillRun(ctx context.Context, k store.BillRunKey, status, errText string) (store.BillRun, error)
	PendingBillDays(ctx context.Context, mchID, from, to string, limit int) ([]string, error)
}

// BillActivities are the daily bill reconciliation's activities. The
// worker builds one value with its dependencies and registers its methods.
type BillActivities struct {
	Store   BillStore
	Bills   BillSource
	Orders  OrderActions
	MchID   string
	Metrics *metrics.Metrics // nil counts nothing
}

// Error types the bill workflow tells apart; none of them is retried as
// such: each sends the workflow down another path.
const (
	ErrTypeBillInvalid     = "BillInvalid"     // the bill does not check out (SHA-1, summary, format): FAILED
	ErrTypeBillUnavailable = "BillUnavailable" // WeChat refused to give the bill (not "later"): FAILED
	ErrTypeBillLinkExpired = "BillLinkExpired" // the download link was refused: ask for the bill again
	ErrTypeBillNotReady    = "BillNotReady"    // WeChat is still making the bill (v2 says so on download)
	ErrTypeNoBill          = "NoBill"          // no bill for the day (v2 says so on download)
	ErrTypeBillStageLost   = "BillStageLost"   // the loaded rows are gone (a database crash): load again
)

// Actions recorded on a difference, the words of the interface (docs/interface.md) for what was done.
const (
	ActionConfirm       = "the order's workflow confirms the payment by order query"
	ActionAlreadyReview = "already in review"
	ActionReview        = "sent to REVIEW"
	ActionRecorded      = "recorded; nothing created"
	ActionTrackRefund   = "recorded on its order as merchant_portal; confirming by refund query"
	ActionRequery       = "refund queried again"
)

// Outcomes of LocateBill.
const (
	BillReady    = "READY"
	BillNotReady = "NOT_READY"
	BillNone     = "NO_BILL"
)

func (a *BillActivities) key(date, runID string) store.BillRunKey {
	return store.BillRunKey{MchID: a.MchID, Date: date, RunID: runID}
}

// BeginBillRunInput names the run.
type BeginBillRunInput struct {
	Date      string    `json:"date"`
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
}

// BeginBillRunResult is empty: the run is recorded.
type BeginBillRunResult struct{}

// BeginBillRun records the run as RUNNING (once, whoever comes first: the
// api answering POST /reconciliations records it too).
func (a *BillActivities) BeginBillRun(ctx context.Context, in BeginBillRunInput) (BeginBillRunResult, error) {
	if _, err := wechatpay.BillDay(in.Date); err != nil {
		return BeginBillRunResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBillInvalid, err)
	}
	return BeginBillRunResult{}, a.Store.BeginBillRun(ctx, a.key(in.Date, in.RunID), in.StartedAt)
}

// LocateBillInput names the day.
type LocateBillInput struct {
	Date string `json:"date"`
}

// LocateBillResult says whether the bill can be had, and where.
type LocateBillResult struct {
	Status string             `json:"status"` // READY, NOT_READY or NO_BILL
	Link   wechatpay.BillLink `json:"link"`
	Detail string             `json:"detail,omitempty"`
}

// LocateBill asks WeChat for the day's bill (v3 tradebill; v2 has nothing
// to ask first). "Not ready" and "no bill" are answers; a refusal that
// will not go away is a non-retryable BillUnavailable; network trouble and
// WeChat's system errors are retried.
func (a *BillActivities) LocateBill(ctx context.Context, in LocateBillInput) (LocateBillResult, error) {
	link, err := a.Bills.LocateBill(ctx, in.Date)
	switch {
	case err == nil:
		return LocateBillResult{Status: BillReady, Link: link}, nil
	case errors.Is(err, wechatpay.ErrBillNotReady):
		return LocateBillResult{Status: BillNotReady, Detail: err.Error()}, nil
	case errors.Is(err, wechatpay.ErrNoBill):
		return LocateBillResult{Status: BillNone, Detail: err.Error()}, nil
	}
	return LocateBillResult{}, billSourceError("locate bill "+in.Date, err)
}

// billSourceError classifies a failure of WeChat's bill API.
func billSourceError(op string, err error) error {
	switch {
	case errors.Is(err, wechatpay.ErrBillLinkExpired):
		return temporal.NewNonRetryableApplicationError(op+": "+err.Error(), ErrTypeBillLinkExpired, err)
	case errors.Is(err, wechatpay.ErrBillNotReady):
		return temporal.NewNonRetryableApplicationError(op+": "+err.Error(), ErrTypeBillNotReady, err)
	case errors.Is(err, wechatpay.ErrNoBill):
		return temporal.NewNonRetryableApplicationError(op+": "+err.Error(), ErrTypeNoBill, err)
	case wechatpay.Retryable(err):
		return fmt.Errorf("%s: %w", op, err)
	}
	return temporal.NewNonRetryableApplicationError(op+": "+err.Error(), ErrTypeBillUnavailable, err)
}

// LoadBillInput is the run and the bill to load.
type LoadBillInput struct {
	Date  string             `json:"date"`
	RunID string             `json:"run_id"`
	Link  wechatpay.BillLink `json:"link"`
}

// LoadBillResult counts the bill's rows.
type LoadBillResult struct {
	Rows     int64  `json:"rows"`
	Payments int64  `json:"payments"`
	Refunds  int64  `json:"refunds"`
	Revoked  int64  `json:"revoked"`
	Bytes    int64  `json:"bytes"` // uncompressed
	SHA1     string `json:"sha1"`  // of the uncompressed bill
}

// heartbeatEvery is how many rows LoadBill reads between heartbeats.
const heartbeatEvery = 20_000

// LoadBill downloads the bill and streams it, row by row as it is
// decompressed and parsed, straight into the run's staging table (COPY).
// Nothing of it is held in memory. The summary and the SHA-1 are checked
// at the end of the stream; a bill that does not check out rolls the whole
// load back (non-retryable BillInvalid: nothing changed). A refused link is
// BillLinkExpired; v2's "no bill" and "not ready" come here too.
func (a *BillActivities) LoadBill(ctx context.Context, in LoadBillInput) (LoadBillResult, error) {
	op := "load bill " + in.Date
	body, err := a.Bills.OpenBill(ctx, in.Link)
	if err != nil {
		return LoadBillResult{}, billSourceError(op, err)
	}
	defer body.Close()
	r, err := bill.NewGzipReader(body, bill.Options{MchID: a.MchID, SHA1: in.Link.HashValue})
	if err != nil {
		return LoadBillResult{}, temporal.NewNonRetryableApplicationError(op+": "+err.Error(), ErrTypeBillInvalid, err)
	}
	var res LoadBillResult
	var readErr error
	next := func() (store.BillStageRow, error) {
		row, err := r.Next()
		if err != nil {
			if err != io.EOF {
				readErr = err
			}
			return store.BillStageRow{}, err
		}
		if n := res.Payments + res.Refunds + res.Revoked; n%heartbeatEvery == 0 && n > 0 {
			activity.RecordHeartbeat(ctx, n)
		}
		s := store.BillStageRow{OutTradeNo: row.OutTradeNo, TransactionID: row.TransactionID}
		switch row.Kind {
		case bill.KindPayment:
			res.Payments++
			s.Kind, s.AmountFen = store.BillRowPayment, row.OrderFen
		case bill.KindRefund:
			res.Refunds++
			s.Kind, s.AmountFen = store.BillRowRefund, row.AppliedRefundFen
			s.OutRefundNo, s.RefundID, s.RefundStatus = row.OutRefundNo, row.RefundID, bill.RefundStatus(row.RefundStatus)
		default:
			res.Revoked++
			s.Kind, s.AmountFen = store.BillRowRevoked, row.OrderFen
		}
		return s, nil
	}
	n, err := a.Store.LoadBillStage(ctx, a.key(in.Date, in.RunID), next)
	switch {
	case readErr != nil && errors.Is(readErr, bill.ErrInvalid):
		return LoadBillResult{}, temporal.NewNonRetryableApplicationError(op+": "+readErr.Error(), ErrTypeBillInvalid, readErr)
	case err != nil:
		return LoadBillResult{}, fmt.Errorf("%s: %w", op, err) // a download cut short, a database error: try again
	}
	res.Rows, res.Bytes, res.SHA1 = n, r.BytesRead(), r.SHA1()
	a.Metrics.BillRows(store.BillRowPayment, res.Payments)
	a.Metrics.BillRows(store.BillRowRefund, res.Refunds)
	a.Metrics.BillRows(store.BillRowRevoked, res.Revoked)
	return res, nil
}

// DiffBillInput names the run.
type DiffBillInput struct {
	Date  string `json:"date"`
	RunID string `json:"run_id"`
}

// DiffBillResult is what the comparison found.
type DiffBillResult struct {
	Matched     int64          `json:"matched"`
	Differences int            `json:"differences"`
	Kinds       map[string]int `json:"kinds"`
	New         map[string]int `json:"new"`
}

// DiffBill compares the loaded bill with our orders and refunds of that
// Beijing day (set-based, in PostgreSQL) and records the differences.
func (a *BillActivities) DiffBill(ctx context.Context, in DiffBillInput) (DiffBillResult, error) {
	start, err := wechatpay.BillDay(in.Date)
	if err != nil {
		return DiffBillResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBillInvalid, err)
	}
	res, err := a.Store.DiffBill(ctx, a.key(in.Date, in.RunID), start, start.AddDate(0, 0, 1))
	if errors.Is(err, store.ErrBillStageLost) {
		return DiffBillResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBillStageLost, err)
	}
	if err != nil {
		return DiffBillResult{}, err
	}
	for _, k := range store.DiffKinds() {
		a.Metrics.BillDifferences(k, res.New[k])
	}
	return DiffBillResult{Matched: res.Matched, Differences: res.Total(), Kinds: res.Kinds, New: res.New}, nil
}

// ActOnDifferencesInput names the run.
type ActOnDifferencesInput struct {
	Date  string `json:"date"`
	RunID string `json:"run_id"`
}

// ActOnDifferencesResult counts what was done.
type ActOnDifferencesResult struct {
	Taken    int    `json:"taken"`     // actions taken by this run
	NotTaken int    `json:"not_taken"` // differences left for a later run
	Note     string `json:"note,omitempty"`
}

// actPage is how many differences are read at a time.
const actPage = 200

// ActOnDifferences takes, through the order's workflow, the action each of
// the run's differences calls for, and records it on the difference.
// Differences whose action was taken (by this run or an earlier one) are
// skipped, so a re-run repeats nothing; a retried attempt resumes after the
// last difference its heartbeat reported.
func (a *BillActivities) ActOnDifferences(ctx context.Context, in ActOnDifferencesInput) (ActOnDifferencesResult, error) {
	k := a.key(in.Date, in.RunID)
	var res ActOnDifferencesResult
	var after int64
	if activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &after)
	}
	for {
		page, err := a.Store.BillActionsPending(ctx, k, after, actPage)
		if err != nil {
			return res, err
		}
		for _, d := range page {
			action, err := a.act(ctx, in.Date, d)
			done := err == nil
			switch {
			case err == nil:
				res.Taken++
			case errors.Is(err, ErrActionUnavailable):
				action, res.NotTaken = "not taken yet: "+err.Error(), res.NotTaken+1
				if res.Note == "" {
					res.Note = err.Error()
				}
			default:
				return res, fmt.Errorf("%s %s: %w", d.Kind, d.OutTradeNo, err)
			}
			if err := a.Store.RecordBillAction(ctx, d.ID, action, done); err != nil {
				return res, err
			}
			after = d.ID
			activity.RecordHeartbeat(ctx, after)
		}
		if len(page) < actPage {
			return res, nil
		}
	}
}

// act takes one difference's action and says what it was. An order
// already in REVIEW is left there: a person looks at it anyway.
func (a *BillActivities) act(ctx context.Context, date string, d store.BillDifference) (string, error) {
	key := string(payment.KeyReviewBill(date, d.Kind, d.OutTradeNo, d.OutRefundNo))
	var wechatFen, ourFen int64
	if d.WeChatAmountFen != nil {
		wechatFen = *d.WeChatAmountFen
	}
	if d.OurAmountFen != nil {
		ourFen = *d.OurAmountFen
	}
	inReview := d.OutRefundNo == "" && d.OurStatus == string(payment.StatusReview)
	switch d.Kind {
	case store.DiffPaidAtWeChatOnly:
		if inReview {
			return ActionAlreadyReview, nil
		}
		reason := fmt.Sprintf("WeChat's bill of %s has transaction %s paid (%s yuan) for this %s order", date, d.TransactionID,
			bill.FormatYuan(wechatFen), d.OurStatus)
		return ActionConfirm, a.Orders.ConfirmPayment(ctx, d.OutTradeNo, reason)
	case store.DiffPaidHereOnly:
		if inReview {
			return ActionAlreadyReview, nil
		}
		reason := fmt.Sprintf("paid here (transaction %s) but not in WeChat's bill of %s", d.TransactionID, date)
		return ActionReview, a.Orders.SendToReview(ctx, d.OutTradeNo, reason, key)
	case store.DiffAmountMismatch:
		if inReview {
			return ActionAlreadyReview, nil
		}
		what := "the payment"
		if d.OutRefundNo != "" {
			what = "refund " + d.OutRefundNo
		}
		reason := fmt.Sprintf("WeChat's bill of %s says %s yuan for %s, we have %s yuan", date, bill.FormatYuan(wechatFen), what, bill.FormatYuan(ourFen))
		return ActionReview, a.Orders.SendToReview(ctx, d.OutTradeNo, reason, key)
	case store.DiffUnknownOrder:
		return ActionRecorded, nil
	case store.DiffRefundUnknown:
		reason := fmt.Sprintf("refund %s (%s yuan) in WeChat's bill of %s, not made through this service", d.OutRefundNo, bill.FormatYuan(wechatFen), date)
		return ActionTrackRefund, a.Orders.TrackRefund(ctx, d.OutTradeNo, d.OutRefundNo, d.RefundID, wechatFen, reason)
	case store.DiffRefundStatus:
		reason := fmt.Sprintf("WeChat's bill of %s says %s for refund %s, we have %s", date, d.BillStatus, d.OutRefundNo, d.OurStatus)
		return ActionRequery, a.Orders.TrackRefund(ctx, d.OutTradeNo, d.OutRefundNo, d.RefundID, wechatFen, reason)
	}
	return "", fmt.Errorf("unknown difference kind %q", d.Kind)
}

// FinishBillRunInput ends a run.
type FinishBillRunInput struct {
	Date   string `json:"date"`
	RunID  string `json:"run_id"`
	Status string `json:"status"` // MATCHED, DIFFERENCES, NO_BILL or FAILED
	Error  string `json:"error,omitempty"`
}

// FinishBillRunResult is the run as recorded.
type FinishBillRunResult struct {
	Status   string `json:"status"`
	BillRows int64  `json:"bill_rows"`
	Matched  int64  `json:"matched"`
}

// FinishBillRun records the run's outcome and counts it.
func (a *BillActivities) FinishBillRun(ctx context.Context, in FinishBillRunInput) (FinishBillRunResult, error) {
	run, err := a.Store.FinishBillRun(ctx, a.key(in.Date, in.RunID), in.Status, in.Error)
	if err != nil {
		return FinishBillRunResult{}, err
	}
	a.Metrics.BillRun(run.Status)
	if run.Status == store.BillMatched || run.Status == store.BillDifferences || run.Status == store.BillNoBill {
		if start, err := wechatpay.BillDay(in.Date); err == nil {
			a.Metrics.BillReconciled(start)
		}
	}
	return FinishBillRunResult{Status: run.Status, BillRows: run.BillRows, Matched: run.Matched}, nil
}

// PendingBillDaysInput is the catch-up window.
type PendingBillDaysInput struct {
	Today  string `json:"today"`  // YYYY-MM-DD, Beijing
	Window int    `json:"window"` // how many days back (WeChat keeps 3 months)
	Limit  int    `json:"limit"`
}

// PendingBillDaysResult lists days to reconcile, newest first.
type PendingBillDaysResult struct {
	Days []string `json:"days"`
}

// PendingBillDays lists the days before today within the window that have
// no finished run.
func (a *BillActivities) PendingBillDays(ctx context.Context, in PendingBillDaysInput) (PendingBillDaysResult, error) {
	today, err := wechatpay.BillDay(in.Today)
	if err != nil {
		return PendingBillDaysResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeBillInvalid, err)
	}
	from := today.AddDate(0, 0, -in.Window).Format(wechatpay.BillDateLayout)
	to := today.AddDate(0, 0, -1).Format(wechatpay.BillDateLayout)
	days, err := a.Store.PendingBillDays(ctx, a.MchID, from, to, in.Limit)
	if err != nil {
		return PendingBillDaysResult{}, err
	}
	if days == nil {
		days = []string{}
	}
	return PendingBillDaysResult{Days: days}, nil
}
