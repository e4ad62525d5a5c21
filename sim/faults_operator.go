package sim

import (
	"errors"
	"net/http"
)

// faultsRequest is the body of POST /sim/faults: one rule, or several
// under "rules".
type faultsRequest struct {
	Rules []FaultRule `json:"rules"`
	FaultRule
}

// handleAddFaults serves POST /sim/faults: 201 with the rules as added
// (with their ids), 400 for a call or kind that does not exist or does not
// fit.
func (s *Server) handleAddFaults(w http.ResponseWriter, r *http.Request) {
	var req faultsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	rules := req.Rules
	if req.Call != "" || req.Kind != "" {
		if len(rules) > 0 {
			writeJSONError(w, http.StatusBadRequest, errors.New(`give one rule or "rules", not both`).Error())
			return
		}
		rules = []FaultRule{req.FaultRule}
	}
	if len(rules) == 0 {
		writeJSONError(w, http.StatusBadRequest, `no rule: want {"call","kind","times","out_trade_no"} or {"rules":[…]}`)
		return
	}
	added, err := s.faults.add(rules)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Info("fault rules added", "rules", len(added))
	writeJSON(w, http.StatusCreated, map[string][]FaultRule{"rules": added})
}

// handleFaults serves GET /sim/faults (FaultsView).
func (s *Server) handleFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.faults.view())
}

// handleClearFaults serves DELETE /sim/faults: the pending rules go; the
// counts of what was injected stay.
func (s *Server) handleClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.faults.clear()
	writeJSON(w, http.StatusOK, s.faults.view())
}
