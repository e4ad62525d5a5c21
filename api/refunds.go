package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

// maxRefundBody caps POST …/refunds bodies.
const maxRefundBody = 4 << 10

// createRefundRequest is POST /orders/{no}/refunds' body, as docs/interface.md
// fixes it.
type createRefundRequest struct {
	OutRefundNo string `json:"out_refund_no"`
	AmountFen   int64  `json:"amount_fen"`
	Reason      string `json:"reason"`
}

func (req *createRefundRequest) validate() error {
	switch {
	case req.OutRefundNo != "" && !payment.ValidOutRefundNo(req.OutRefundNo):
		return errors.New("out_refund_no must be 1-64 of 0-9 A-Z a-z _ - | * @")
	case req.AmountFen <= 0:
		return errors.New("amount_fen must be an integer > 0")
	case !utf8.ValidString(req.Reason) || utf8.RuneCountInString(req.Reason) > 80:
		return errors.New("reason must be valid UTF-8 of at most 80 characters")
	}
	return nil
}

// createRefund is POST /orders/{out_trade_no}/refunds: the refund is a
// message to the order's workflow, which records it in PostgreSQL (under
// the order's row lock: never more than was paid) and then asks WeChat
// under its out_refund_no. 201 once accepted here; a repeat of the same
// out_refund_no and amount answers 200 with the refund as it is now.
func (s *Server) createRefund(w http.ResponseWriter, r *http.Request) {
	var req createRefundRequest
	if err := decodeJSON(w, r, maxRefundBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := req.validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.RefundsUnavailable != "" {
		writeError(w, http.StatusNotImplemented, s.RefundsUnavailable)
		return
	}
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	if req.OutRefundNo == "" {
		req.OutRefundNo = newOutRefundNo(s.now())
	} else if ref, err := s.Orders.GetRefund(r.Context(), s.MchID, o.OutTradeNo, req.OutRefundNo); err == nil {
		// A repeat of a refund accepted before: the refund as it is now,
		// or 409 if it was asked with another amount.
		if ref.AmountFen != req.AmountFen {
			writeError(w, http.StatusConflict, "out_refund_no "+req.OutRefundNo+" was used before with another amount")
			return
		}
		writeJSON(w, http.StatusOK, s.remind(r, o, req, ref))
		return
	} else if !errors.Is(err, store.ErrNotFound) {
		// The refund's row cannot be read, and the workflow's acceptance
		// needs the same database: the client is told to retry now rather
		// than after the update's timeout.
		s.Logger.Error("refund: read the refund", "out_trade_no", o.OutTradeNo, "out_refund_no", req.OutRefundNo, "err", err)
		writeError(w, http.StatusServiceUnavailable, "could not read the refund; retry with the same out_refund_no "+req.OutRefundNo)
		return
	}
	ctx, cancel := contextWithTimeout(r, UpdateTimeout)
	defer cancel()
	res, err := s.Gateway.Refund(ctx, o, workflows.RefundRequest{OutRefundNo: req.OutRefundNo, AmountFen: req.AmountFen, Reason: req.Reason})
	if status, msg, ok := updateError(err); ok {
		writeError(w, status, msg)
		return
	}
	if err != nil {
		s.Logger.Error("refund", "out_trade_no", o.OutTradeNo, "out_refund_no", req.OutRefundNo, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the refund could not be accepted in time; retry with the same out_refund_no "+req.OutRefundNo)
		return
	}
	status := http.StatusCreated
	if !res.Created {
		status = http.StatusOK
	}
	s.Logger.Info("refund accepted", "out_trade_no", o.OutTradeNo, "out_refund_no", res.Refund.OutRefundNo,
		"amount_fen", res.Refund.AmountFen, "created", res.Created)
	writeJSON(w, status, res.Refund)
}

// remind sends a repeated refund to the order's workflow again while WeChat
// has not taken it (no refund_id) and it is not final: the first request's
// update may have been lost with its workflow task (a Temporal server that
// crashed between admitting and accepting it), and then no run follows the
// refund. The update is idempotent: the workflow finds the refund accepted
// and follows it, under the same out_refund_no. The repeat is answered 200
// with the refund either way; if the workflow cannot be reached now, the
// safety net's refund pass takes the refund up.
func (s *Server) remind(r *http.Request, o payment.Order, req createRefundRequest, ref payment.Refund) payment.Refund {
	if ref.RefundID != "" || ref.Status.Final() {
		return ref
	}
	ctx, cancel := contextWithTimeout(r, UpdateTimeout)
	defer cancel()
	res, err := s.Gateway.Refund(ctx, o, workflows.RefundRequest{OutRefundNo: req.OutRefundNo, AmountFen: req.AmountFen, Reason: req.Reason})
	if err != nil {
		s.Logger.Warn("refund repeat: the order's workflow was not reminded; the safety net will",
			"out_trade_no", o.OutTradeNo, "out_refund_no", req.OutRefundNo, "err", err)
		return ref
	}
	return res.Refund
}

// getRefund is GET /orders/{out_trade_no}/refunds/{out_refund_no}.
func (s *Server) getRefund(w http.ResponseWriter, r *http.Request) {
	no, refundNo := mux.Vars(r)["out_trade_no"], mux.Vars(r)["out_refund_no"]
	if !payment.ValidOutTradeNo(no) || !payment.ValidOutRefundNo(refundNo) {
		writeError(w, http.StatusNotFound, "no such refund")
		return
	}
	ref, err := s.Orders.GetRefund(r.Context(), s.MchID, no, refundNo)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such refund")
		return
	}
	if err != nil {
		s.Logger.Error("get refund", "out_trade_no", no, "out_refund_no", refundNo, "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the refund")
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// newOutRefundNo makes a refund number: "RF", the UTC time to the second
// and 10 random digits.
func newOutRefundNo(now time.Time) string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e10))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	return fmt.Sprintf("RF%s%010d", now.UTC().Format("20060102150405"), n.Int64())
}
