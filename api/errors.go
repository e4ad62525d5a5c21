package api

import (
	"errors"
	"net/http"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/workflows"
)

// updateErrors maps the order workflow's typed refusals to HTTP answers,
// in one table. The message is the workflow's own, written for clients;
// anything not listed is an internal failure, answered without its text.
var updateErrors = map[string]int{
	workflows.ErrTypeAlreadyPaid: http.StatusConflict,
	workflows.ErrTypeInReview:    http.StatusConflict,
	workflows.ErrTypeNotInReview: http.StatusConflict,
	workflows.ErrTypeCannot:      http.StatusConflict,
	workflows.ErrTypeNotOwned:    http.StatusServiceUnavailable,
	workflows.ErrTypeBadRequest:  http.StatusBadRequest,
	workflows.ErrTypeNoOrder:     http.StatusNotFound,

	workflows.ErrTypeRefundConflict:     http.StatusConflict,
	workflows.ErrTypeNotRefundable:      http.StatusConflict,
	workflows.ErrTypeRefundsUnavailable: http.StatusNotImplemented,
}

// updateError is the HTTP status and message for an error from an order's
// workflow; ok is false when it is not one of the workflow's refusals.
func updateError(err error) (status int, msg string, ok bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return 0, "", false
	}
	status, ok = updateErrors[appErr.Type()]
	if !ok {
		return 0, "", false
	}
	return status, appErr.Message(), true
}
