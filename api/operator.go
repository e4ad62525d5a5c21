package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
	"github.com/payflow/payflow/workflows"
)

// maxOperatorBody caps operator request bodies.
const maxOperatorBody = 4 << 10

// resolveOrder is POST /orders/{out_trade_no}/resolve: an operator settles
// an order in REVIEW without SQL, through the order's workflow, which
// records who resolved it, how and why in the order's log.
func (s *Server) resolveOrder(w http.ResponseWriter, r *http.Request) {
	var req workflows.ResolveRequest
	if err := decodeJSON(w, r, maxOperatorBody, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error()+` ({"action":"accept_paid|close|refund","operator":"…","reason":"…"})`)
		return
	}
	if err := validateResolve(req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	o, ok := s.loadOrder(w, r)
	if !ok {
		return
	}
	if o.Status != payment.StatusReview {
		writeError(w, http.StatusConflict, "order is "+string(o.Status)+"; only an order in REVIEW is resolved")
		return
	}
	ctx, cancel := contextWithTimeout(r, UpdateTimeout)
	defer cancel()
	res, err := s.Gateway.Resolve(ctx, o, req)
	if status, msg, ok := updateError(err); ok {
		writeError(w, status, msg)
		return
	}
	if err != nil {
		s.Logger.Error("resolve", "out_trade_no", o.OutTradeNo, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the resolution did not finish in time; GET the order to see whether it did, or retry")
		return
	}
	s.Logger.Info("order resolved", "out_trade_no", o.OutTradeNo, "action", req.Action, "status", res.Status)
	s.getOrder(w, r)
}

// validateResolve checks a resolution's shape as the workflow's update
// validator does, so that bad input is refused here, before the order is
// read or anything is asked of Temporal (an Update-With-Start would reach
// the order's workflow, and may start a run, only to be rejected).
func validateResolve(req workflows.ResolveRequest) error {
	switch {
	case req.Action != workflows.ResolveAcceptPaid && req.Action != workflows.ResolveClose && req.Action != workflows.ResolveRefund:
		return fmt.Errorf("action must be %s, %s or %s", workflows.ResolveAcceptPaid, workflows.ResolveClose, workflows.ResolveRefund)
	case strings.TrimSpace(req.Operator) == "" || utf8.RuneCountInString(req.Operator) > 64 || !utf8.ValidString(req.Operator):
		return errors.New("operator (who resolves it) is required, at most 64 characters")
	case strings.TrimSpace(req.Reason) == "" || utf8.RuneCountInString(req.Reason) > 256 || !utf8.ValidString(req.Reason):
		return errors.New("reason is required, at most 256 characters")
	}
	return nil
}

// inboxRows is GET /inbox?state=parked|pending: the notifications the
// relay has not delivered, for operators.
func (s *Server) inboxRows(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "parked"
	}
	if state != "parked" && state != "pending" {
		writeError(w, http.StatusBadRequest, "state must be parked or pending")
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, http.StatusBadRequest, "limit must be 1-1000")
			return
		}
		limit = n
	}
	rows, err := s.Orders.InboxRows(r.Context(), state, limit)
	if err != nil {
		s.Logger.Error("inbox rows", "err", err)
		writeError(w, http.StatusInternalServerError, "could not read the inbox")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"state": state, "rows": rows})
}

// redriveInbox is POST /inbox/{id}/redrive: a parked notification goes back
// in line for the relay, once an operator fixed what kept it out.
func (s *Server) redriveInbox(w http.ResponseWriter, r *http.Request) {
	if err := noBody(w, r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := mux.Vars(r)["id"]
	err := s.Orders.RedriveInbox(r.Context(), id)
	if errors.Is(err, store.ErrNotParked) {
		writeError(w, http.StatusNotFound, "no parked inbox row with that id")
		return
	}
	if err != nil {
		s.Logger.Error("redrive inbox", "id", id, "err", err)
		writeError(w, http.StatusInternalServerError, "could not re-drive the row")
		return
	}
	s.Logger.Info("inbox row re-driven", "id", id)
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "state": "pending"})
}
