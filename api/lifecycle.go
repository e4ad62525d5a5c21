package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

// lifecycleStart is how the workflow owning a stored order is started:
// a new run, or the one already running (USE_EXISTING).
func (s *Server) lifecycleStart(o payment.Order) (client.StartWorkflowOptions, workflows.PaymentInput) {
	in := workflows.PaymentInput{
		OutTradeNo: o.OutTradeNo,
		Lifecycle:  workflows.NewLifecycle(o.CreatedAt, o.ExpiresAt, o.TradeType, s.OrderTimeout, s.QueryAfter),
	}
	return client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(o.OutTradeNo),
		TaskQueue:                s.TaskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		TypedSearchAttributes:    workflows.OrderAttributes(o.OutTradeNo, o.AmountFen),
		Memo:                     workflows.Memo(o.OutTradeNo, o.AmountFen, o.TradeType, in.Lifecycle.ExpiresAt),
		StaticSummary:            workflows.Summary(o.OutTradeNo, o.AmountFen),
	}, in
}

// startLifecycle makes sure a workflow owns the stored order.
func (s *Server) startLifecycle(ctx context.Context, o payment.Order) error {
	opts, in := s.lifecycleStart(o)
	if _, err := s.Temporal.ExecuteWorkflow(ctx, opts, workflows.PaymentWorkflow, in); err != nil {
		return fmt.Errorf("start workflow %s: %w", opts.ID, err)
	}
	return nil
}

// update runs a workflow update and waits for its result, at most
// UpdateTimeout (less when the request's own deadline comes first).
func (s *Server) update(ctx context.Context, outTradeNo, name string, result any) error {
	ctx, cancel := context.WithTimeout(ctx, UpdateTimeout)
	defer cancel()
	h, err := s.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.WorkflowID(outTradeNo), UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return err
	}
	return h.Get(ctx, result)
}

// prepay waits for the order's workflow to prepay at WeChat and fills in
// what the client needs to pay. It answers the HTTP error itself.
func (s *Server) prepay(w http.ResponseWriter, r *http.Request, o *payment.Order) bool {
	var res workflows.PrepayResult
	if err := s.update(r.Context(), o.OutTradeNo, workflows.UpdatePrepay, &res); err != nil {
		s.Logger.Error("prepay", "out_trade_no", o.OutTradeNo, "err", err)
		writeError(w, http.StatusServiceUnavailable,
			"the order was created but its prepay did not finish in time; GET /orders/"+o.OutTradeNo+" shows it once done")
		return false
	}
	if res.Error != "" {
		writeError(w, http.StatusBadGateway, "WeChat Pay refused the prepay: "+res.Error)
		return false
	}
	o.CodeURL, o.JSAPI = res.Prepay.CodeURL, res.Prepay.JSAPI
	return true
}

// closeOrder is POST /orders/{out_trade_no}/close: the merchant cancels an
// unpaid order, at WeChat too. Closing a CLOSED order answers it again.
func (s *Server) closeOrder(w http.ResponseWriter, r *http.Request) {
	if err := noBody(w, r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	switch o.Status {
	case payment.StatusPaid, payment.StatusReview:
		writeError(w, http.StatusConflict, "order is "+string(o.Status)+"; only an unpaid order can be closed")
		return
	case payment.StatusClosed:
		writeJSON(w, http.StatusOK, o)
		return
	}
	if err := s.startLifecycle(r.Context(), o); err != nil {
		s.Logger.Error("close: start workflow", "out_trade_no", o.OutTradeNo, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not reach the order's workflow; retry")
		return
	}
	var res workflows.CloseResult
	err := s.update(r.Context(), o.OutTradeNo, workflows.UpdateClose, &res)
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, &appErr) && (appErr.Type() == workflows.ErrTypeAlreadyPaid || appErr.Type() == workflows.ErrTypeInReview):
		writeError(w, http.StatusConflict, appErr.Message())
		return
	case err != nil:
		s.Logger.Error("close", "out_trade_no", o.OutTradeNo, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the close did not finish in time; retry")
		return
	case res.Status == payment.StatusPaid || res.Status == payment.StatusReview:
		writeError(w, http.StatusConflict, "order is "+string(res.Status)+"; the payment came first")
		return
	}
	s.Logger.Info("order closed by merchant", "out_trade_no", o.OutTradeNo)
	s.getOrder(w, r)
}

// syncOrder is POST /orders/{out_trade_no}/sync: ask WeChat about the
// order now (an operator who knows the user paid).
func (s *Server) syncOrder(w http.ResponseWriter, r *http.Request) {
	if err := noBody(w, r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	if o.Status != payment.StatusPending {
		writeJSON(w, http.StatusAccepted, map[string]string{
			"out_trade_no": o.OutTradeNo, "status": string(o.Status), "message": "the order is decided; nothing to ask",
		})
		return
	}
	opts, in := s.lifecycleStart(o)
	if _, err := s.Temporal.SignalWithStartWorkflow(r.Context(), opts.ID, workflows.SignalSync, nil, opts, workflows.PaymentWorkflow, in); err != nil {
		s.Logger.Error("sync", "out_trade_no", o.OutTradeNo, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not reach the order's workflow; retry")
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{
		"out_trade_no": o.OutTradeNo, "status": string(o.Status), "message": "asking WeChat Pay now",
	})
}

// loadOrder reads the order named in the path, answering 404 itself.
func (s *Server) loadOrder(w http.ResponseWriter, r *http.Request) (payment.Order, bool) {
	no := mux.Vars(r)["out_trade_no"]
	if !payment.ValidOutTradeNo(no) {
		writeError(w, http.StatusNotFound, "no such order")
		return payment.Order{}, false
	}
	o, err := s.Orders.GetOrder(r.Context(), no)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such order")
		return payment.Order{}, false
	}
	if err != nil {
		s.Logger.Error("get order", "out_trade_no", no, "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the order")
		return payment.Order{}, false
	}
	return o, true
}
