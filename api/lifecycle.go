package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// prepay creates the order's workflow and waits, in the same call, for its
// prepay, filling in what the client needs to pay. It answers the HTTP
// error itself.
func (s *Server) prepay(w http.ResponseWriter, r *http.Request, o *payment.Order) bool {
	ctx, cancel := context.WithTimeout(r.Context(), UpdateTimeout)
	defer cancel()
	res, err := s.Gateway.Create(ctx, *o)
	if status, msg, ok := updateError(err); ok {
		// The workflow refused the prepay (the order is decided, or the
		// request conflicts with the one it holds): its answer, not a 503.
		writeError(w, status, msg)
		return false
	}
	if err != nil {
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
	case payment.StatusPaid, payment.StatusReview, payment.StatusRefunded:
		writeError(w, http.StatusConflict, "order is "+string(o.Status)+"; only an unpaid order can be closed")
		return
	case payment.StatusClosed:
		writeJSON(w, http.StatusOK, o)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), UpdateTimeout)
	defer cancel()
	res, err := s.Gateway.Close(ctx, o)
	if status, msg, ok := updateError(err); ok {
		writeError(w, status, msg)
		return
	}
	switch {
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
	if err := s.Gateway.Sync(r.Context(), o); err != nil {
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

// contextWithTimeout bounds a request's wait for its order's workflow
// (within the request's own deadline, RequestTimeout).
func contextWithTimeout(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), d)
}
