package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/payflow/payflow/activities"
	"github.com/payflow/payflow/payment"
)

// a names the activities; the worker registers the real value.
var a *activities.Activities

// Versions of the workflow's commands. A run replays the branch it started
// with; each comment says when the old branch can go.
const (
	// versionLocalActivities runs a payment's short steps as local
	// activities. The regular-activity branch can be deleted once no run
	// started before it is open (an order's run lives at most its timeout,
	// at most 7 days, plus 25 h of lingering) and the two v2 histories in
	// testdata are re-recorded.
	versionLocalActivities = "local-activities"
	// versionLoadOrder made runs started by a notification read the order
	// and own its lifecycle. Superseded by versionOneLoop (new runs never
	// ask for it); delete together with versionOneLoop's old branch.
	versionLoadOrder = "load-order-lifecycle"
	// versionOneLoop is the one-loop workflow: every run reads the order in
	// its first task and sets its real status in the search attributes,
	// marks each notification examined, follows refunds, takes the bill's
	// and operators' messages and continues as new when Temporal suggests
	// it. The old branch (lifecycle from the input, no examined marks) can
	// be deleted, with versionLoadOrder, once no run started before it is
	// open (7 days + 25 h after the release) and the recorded histories in
	// testdata are re-recorded from this version.
	versionOneLoop = "one-loop"
	// versionRefundWaits resets a refund's backoff when the kind of wait
	// changes (after NOT_ENOUGH's 10 minutes, a fault waited 5 minutes
	// instead of 10 s). It is asked only when the kind changes, so runs
	// before it replay as they ran. The old branch can be deleted once no
	// run started before it is open: a refund is followed for at most as
	// long as WeChat keeps it (NOT_ENOUGH and ABNORMAL refunds for days;
	// check with a search for open refunds older than the release).
	versionRefundWaits = "refund-waits"
	// versionRepeatKeepsWait: a repeated refund request for a refund the
	// run follows no longer brings its next step forward. Until each
	// request became its own update (refund/{out_refund_no}/{nonce}),
	// Temporal answered a repeat within a run itself, and only a repeat
	// reaching a later run did. It is asked only for such a repeat, so runs
	// before it replay as they ran. The old branch can be deleted once no
	// run started before it is open, as for versionRefundWaits.
	versionRepeatKeepsWait = "refund-repeat-keeps-wait"
)

// Revision is the revision of the workflow code that runs started now
// (PaymentInput.Revision) are at: 1 takes versionLocalActivities and
// versionOneLoop without asking GetVersion. Each GetVersion a new run asks
// costs it a marker and a search-attribute upsert (TemporalChangeVersion):
// two more history events and one more visibility write per payment, for
// a question whose answer is known when the run is started. Runs without
// a revision still ask, so the recorded histories replay as they ran.
// A worker from before revisions must not run again while runs started
// with one are open: it would replay them as runs from before both
// changes. Raise it, with a new branch below, only for a change every
// new run takes.
const Revision = 1

// PaymentWorkflow owns one order, payment/{out_trade_no}, for as long as
// anything about it is open: it prepays, waits for WeChat's notifications,
// queries WeChat itself when none comes, closes the order when it expires,
// confirms every payment with WeChat's order query before it counts, and
// follows the order's refunds to their end. Every message (notification,
// sync, close, refund, resolution, the bill's requests) is taken off its
// channel in one place, the listener; the main loop does one piece of work
// at a time, so an order's payments, refunds and closes never race.
func PaymentWorkflow(ctx workflow.Context, in PaymentInput) (PaymentResult, error) {
	p := newFlow(ctx, in)
	if in.Revision >= 1 {
		p.local, p.oneLoop = true, true
	} else {
		p.local = workflow.GetVersion(ctx, versionLocalActivities, workflow.DefaultVersion, 1) == 1
		p.oneLoop = workflow.GetVersion(ctx, versionOneLoop, workflow.DefaultVersion, 1) == 1
	}
	if err := p.registerHandlers(ctx); err != nil {
		return PaymentResult{}, err
	}
	workflow.Go(ctx, p.listen)
	err := p.run(ctx)
	p.state.Step = StepDone
	return PaymentResult{State: p.queryState()}, err
}

// flow is the workflow's private state, with one method per step.
type flow struct {
	in      PaymentInput
	lc      *Lifecycle // set while the workflow owns a PENDING order
	state   State
	set     activities.Settings
	local   bool // short steps run as local activities (versionLocalActivities)
	oneLoop bool // versionOneLoop
	loaded  bool // the order has been read (or came with the input)

	ch channels

	// Messages taken off their channels by the listener, not yet handled.
	queue          []payment.Notification
	seen           map[string]bool        // notification ids received
	seenOrder      []string               // the same, oldest first, for ContinueAsNew
	unexamined     []payment.Notification // handled, not yet marked examined
	syncRequested  bool
	closeRequested bool
	reloadRefunds  bool // the open refunds are to be read again (SignalReloadRefunds)
	confirms       []ConfirmRequest
	reviews        []ReviewRequest
	tracks         []TrackRefundRequest

	// Timing of an owned order.
	interval     time.Duration // between our own queries, doubling
	nextQuery    time.Time
	closeBackoff time.Duration // between attempts to close at WeChat
	closeRetryAt time.Time     // no close attempt before this (WeChat refused, or did not answer)
	lingerUntil  time.Time     // a CLOSED order's run examines late payments until then
	idleSince    time.Time     // a run that does not own its order ends after IdleTimeout of silence

	prepayDone  bool
	prepay      payment.Prepay
	prepayError string

	refunds     []*refundTrack
	refundPoked bool // a refund's next step was brought forward (a notification, a new refund)
}

// channels are the workflow's signal channels.
type channels struct {
	notifications, syncs, confirms, reviews, tracks, reloads workflow.ReceiveChannel
}

func newFlow(ctx workflow.Context, in PaymentInput) *flow {
	if in.ConfirmWindow <= 0 {
		in.ConfirmWindow = DefaultConfirmWindow
	}
	if in.IdleTimeout <= 0 {
		in.IdleTimeout = DefaultIdleTimeout
	}
	p := &flow{
		in:    in,
		lc:    in.Lifecycle,
		state: State{OutTradeNo: in.OutTradeNo, Status: payment.StatusPending, Step: StepWaiting},
		ch: channels{
			notifications: workflow.GetSignalChannel(ctx, SignalNotification),
			syncs:         workflow.GetSignalChannel(ctx, SignalSync),
			confirms:      workflow.GetSignalChannel(ctx, SignalConfirm),
			reviews:       workflow.GetSignalChannel(ctx, SignalReview),
			tracks:        workflow.GetSignalChannel(ctx, SignalTrackRefund),
			reloads:       workflow.GetSignalChannel(ctx, SignalReloadRefunds),
		},
		seen:      map[string]bool{},
		idleSince: workflow.Now(ctx),
	}
	if in.Lifecycle != nil {
		p.loaded = true // a run started before versionOneLoop: the input is the order
	}
	if in.Carry != nil {
		p.restore(in.Carry)
	}
	return p
}

// listen takes every signal off its channel as it arrives, in one place,
// so that nothing is left behind whatever step the main loop is in.
func (p *flow) listen(ctx workflow.Context) {
	for {
		sel := workflow.NewSelector(ctx)
		p.addReceivers(ctx, sel)
		sel.Select(ctx)
	}
}

func (p *flow) addReceivers(ctx workflow.Context, sel workflow.Selector) {
	sel.AddReceive(p.ch.notifications, func(c workflow.ReceiveChannel, _ bool) {
		var n payment.Notification
		c.Receive(ctx, &n)
		p.accept(n)
	})
	sel.AddReceive(p.ch.syncs, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		p.syncRequested = true // syncs that pile up are one query
	})
	sel.AddReceive(p.ch.confirms, func(c workflow.ReceiveChannel, _ bool) {
		var r ConfirmRequest
		c.Receive(ctx, &r)
		p.confirms = append(p.confirms, r)
	})
	sel.AddReceive(p.ch.reviews, func(c workflow.ReceiveChannel, _ bool) {
		var r ReviewRequest
		c.Receive(ctx, &r)
		p.reviews = append(p.reviews, r)
	})
	sel.AddReceive(p.ch.tracks, func(c workflow.ReceiveChannel, _ bool) {
		var r TrackRefundRequest
		c.Receive(ctx, &r)
		p.tracks = append(p.tracks, r)
	})
	sel.AddReceive(p.ch.reloads, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(ctx, nil)
		p.reloadRefunds = true // reloads that pile up are one read
	})
}

// drain takes whatever is buffered off the channels without blocking: the
// run checks it before it decides it is done or continues as new, so no
// signal is left in a channel of a run that ends.
func (p *flow) drain(workflow.Context) {
	for {
		var n payment.Notification
		if !p.ch.notifications.ReceiveAsync(&n) {
			break
		}
		p.accept(n)
	}
	for p.ch.syncs.ReceiveAsync(nil) {
		p.syncRequested = true
	}
	for {
		var r ConfirmRequest
		if !p.ch.confirms.ReceiveAsync(&r) {
			break
		}
		p.confirms = append(p.confirms, r)
	}
	for {
		var r ReviewRequest
		if !p.ch.reviews.ReceiveAsync(&r) {
			break
		}
		p.reviews = append(p.reviews, r)
	}
	for {
		var r TrackRefundRequest
		if !p.ch.tracks.ReceiveAsync(&r) {
			break
		}
		p.tracks = append(p.tracks, r)
	}
	for p.ch.reloads.ReceiveAsync(nil) {
		p.reloadRefunds = true
	}
}

// accept counts a notification and queues it unless it repeats one already
// seen: the same notification id, or the transaction being (or already)
// applied. A repeat is examined by being recognised.
func (p *flow) accept(n payment.Notification) {
	p.state.Notifications++
	dup := p.seen[n.ID] || (n.Succeeded() && n.TransactionID != "" && n.TransactionID == p.state.TransactionID)
	if !p.seen[n.ID] {
		p.seen[n.ID] = true
		p.seenOrder = append(p.seenOrder, n.ID)
	}
	if dup {
		p.state.Duplicates++
		p.examined(n)
		return
	}
	p.queue = append(p.queue, n)
}

// examined notes a notification to mark examined in the audit trail.
func (p *flow) examined(n payment.Notification) {
	if p.oneLoop && n.ID != "" {
		p.unexamined = append(p.unexamined, n)
	}
}

func (p *flow) pop() payment.Notification {
	n := p.queue[0]
	p.queue = p.queue[1:]
	return n
}

// owned reports whether the run drives an unpaid order's lifecycle.
func (p *flow) owned() bool { return p.lc != nil && p.state.Status == payment.StatusPending }

// final reports whether the payment is decided (paid or in review; a
// CLOSED order may still be paid late, and is watched).
func (p *flow) final() bool {
	switch p.state.Status {
	case payment.StatusPaid, payment.StatusReview, payment.StatusRefunded:
		return true
	}
	return false
}

// run is the one loop: set up, then do whatever is due, one piece of work
// at a time, and wait when nothing is, until nothing about the order is
// open any more.
func (p *flow) run(ctx workflow.Context) error {
	if err := p.setUp(ctx); err != nil {
		return err
	}
	for {
		did, err := p.step(ctx)
		if err != nil {
			return err
		}
		if did {
			continue
		}
		p.drain(ctx)
		if p.woken() {
			continue
		}
		if p.finished(ctx) {
			// Updates being handled finish first; one may have brought
			// work (a refund), and then the run goes on.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			p.drain(ctx)
			if !p.woken() && p.finished(ctx) {
				return nil
			}
			continue
		}
		if p.oneLoop && workflow.GetInfo(ctx).GetContinueAsNewSuggested() && workflow.AllHandlersFinished(ctx) {
			return p.continueAsNew(ctx)
		}
		if err := p.wait(ctx); err != nil {
			return err
		}
	}
}

// setUp reads the order (every run since versionOneLoop; before it, runs
// started by a notification) and prepays an owned order once.
func (p *flow) setUp(ctx workflow.Context) error {
	switch {
	case p.in.Carry != nil:
		// Continued as new: the state came with the input.
	case p.oneLoop:
		if err := p.loadOrder(ctx); err != nil {
			return err
		}
	case p.lc == nil:
		if workflow.GetVersion(ctx, versionLoadOrder, workflow.DefaultVersion, 1) == 1 {
			if err := p.loadOrder(ctx); err != nil {
				return err
			}
		}
	}
	p.loaded = true
	if p.owned() {
		p.state.ExpiresAt = p.lc.ExpiresAt
		if p.nextQuery.IsZero() {
			p.interval = p.lc.QueryAfter
			p.nextQuery = p.lc.CreatedAt.Add(p.interval)
		}
		if p.lc.Prepay && !p.prepayDone {
			return p.doPrepay(ctx)
		}
	}
	return nil
}

// step does the first piece of work that is due and reports whether it did
// anything.
func (p *flow) step(ctx workflow.Context) (bool, error) {
	now := workflow.Now(ctx)
	switch {
	case len(p.unexamined) > 0 && len(p.queue) == 0:
		return true, p.markExamined(ctx)
	case len(p.queue) > 0:
		n := p.pop()
		p.idleSince = now
		err := p.handle(ctx, n)
		if err == nil {
			p.examined(n)
		}
		return true, err
	case len(p.reviews) > 0:
		r := p.reviews[0]
		p.reviews = p.reviews[1:]
		return true, p.requestedReview(ctx, r)
	case len(p.confirms) > 0:
		r := p.confirms[0]
		p.confirms = p.confirms[1:]
		return true, p.requestedConfirm(ctx, r)
	case len(p.tracks) > 0:
		r := p.tracks[0]
		p.tracks = p.tracks[1:]
		return true, p.trackRefund(ctx, r)
	case p.reloadRefunds:
		p.reloadRefunds = false
		return true, p.reloadOpenRefunds(ctx)
	case p.owned() && p.closeRequested && !now.Before(p.closeRetryAt):
		return true, p.close(ctx, "closed by the merchant", payment.KeyClosedMerchant)
	case p.owned() && !now.Before(p.lc.ExpiresAt) && !now.Before(p.closeRetryAt):
		return true, p.expire(ctx)
	case p.owned() && (p.syncRequested || !now.Before(p.nextQuery)):
		p.syncRequested = false
		err := p.poll(ctx)
		p.interval = min(2*p.interval, maxQueryInterval)
		p.nextQuery = workflow.Now(ctx).Add(p.interval)
		return true, err
	case p.syncRequested && !p.owned():
		p.syncRequested = false // a decided order: nothing to ask; refunds follow their own schedule
		return true, nil
	}
	if r := p.dueRefund(now); r != nil {
		return true, p.followRefund(ctx, r)
	}
	return false, nil
}

// woken reports whether a message arrived that the loop must handle now.
func (p *flow) woken() bool {
	return len(p.queue) > 0 || len(p.unexamined) > 0 || len(p.confirms) > 0 || len(p.reviews) > 0 || len(p.tracks) > 0 ||
		p.reloadRefunds || p.syncRequested || (p.closeRequested && p.owned()) || p.refundPoked
}

// finished reports whether nothing about the order is open: decided, no
// message waiting, no refund to follow, and (for a CLOSED order this run
// closed) WeChat's retry window over.
func (p *flow) finished(ctx workflow.Context) bool {
	if p.woken() || p.openRefunds() {
		return false
	}
	now := workflow.Now(ctx)
	switch {
	case p.owned():
		return false
	case p.state.UnknownOrder:
		return true // nothing here to watch: what came is recorded
	case p.state.Status == payment.StatusPending:
		// Not ours to drive (an order from before lifecycles, or none in
		// the database): wait a while for more notifications.
		return !now.Before(p.idleSince.Add(p.in.IdleTimeout))
	case p.state.Status == payment.StatusClosed:
		return !now.Before(p.lingerUntil)
	}
	return true
}

// wait sleeps until the next thing is due or a message arrives.
func (p *flow) wait(ctx workflow.Context) error {
	p.state.Step = StepWaiting
	if p.state.Status == payment.StatusClosed {
		p.state.Step = StepLingering
	}
	wake := p.nextWake(ctx)
	d := wake.Sub(workflow.Now(ctx))
	if d <= 0 {
		return nil
	}
	_, err := workflow.AwaitWithTimeout(ctx, d, p.woken)
	return err
}

// nextWake is when the next scheduled piece of work is due.
func (p *flow) nextWake(ctx workflow.Context) time.Time {
	now := workflow.Now(ctx)
	var wake time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	switch {
	case p.owned():
		consider(p.nextQuery)
		consider(later(p.lc.ExpiresAt, p.closeRetryAt))
		if p.closeRequested {
			consider(p.closeRetryAt)
		}
	case p.state.Status == payment.StatusPending:
		consider(p.idleSince.Add(p.in.IdleTimeout))
	case p.state.Status == payment.StatusClosed:
		consider(p.lingerUntil)
	}
	for _, r := range p.refunds {
		if !r.done() {
			consider(r.NextAt)
		}
	}
	if wake.IsZero() {
		wake = now.Add(p.in.IdleTimeout)
	}
	return wake
}

// continueAsNew hands the run's state to a fresh run when Temporal
// suggests it (a long-lived order: days of polling, a bank-card refund, a
// flood of syncs). Signals still buffered are taken first and carried.
func (p *flow) continueAsNew(ctx workflow.Context) error {
	p.drain(ctx)
	workflow.GetLogger(ctx).Info("continuing as new", "out_trade_no", p.in.OutTradeNo,
		"history_length", workflow.GetInfo(ctx).GetCurrentHistoryLength())
	in := p.in
	in.Lifecycle = nil
	in.Carry = p.carry()
	return workflow.NewContinueAsNewError(ctx, PaymentWorkflow, in)
}

// IsContinueAsNew reports whether err is the run continuing as new.
func IsContinueAsNew(err error) bool {
	var can *workflow.ContinueAsNewError
	return errors.As(err, &can)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (p *flow) String() string { return fmt.Sprintf("payment/%s %s", p.in.OutTradeNo, p.state.Status) }
