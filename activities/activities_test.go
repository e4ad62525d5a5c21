package activities

import (
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/payflow/payflow/store"
)

func TestStoreErrorClassification(t *testing.T) {
	if storeError("mark paid", "ORDER1", nil) != nil {
		t.Fatal("nil must stay nil")
	}
	var appErr *temporal.ApplicationError
	err := storeError("mark paid", "ORDER1", fmt.Errorf("get order ORDER1: %w", store.ErrNotFound))
	if !errors.As(err, &appErr) || appErr.Type() != ErrTypeOrderNotFound || !appErr.NonRetryable() ||
		appErr.Message() != "mark paid ORDER1: order not found" {
		t.Fatalf("missing order = %v, want a non-retryable %s", err, ErrTypeOrderNotFound)
	}
	down := errors.New("connection refused")
	err = storeError("order log", "ORDER1", down)
	if errors.As(err, &appErr) || !errors.Is(err, down) || err.Error() != "order log ORDER1: connection refused" {
		t.Fatalf("transient = %v, want it wrapped and retryable", err)
	}
}
