package wechatpay

import (
	"errors"
	"fmt"
	"testing"
)

func TestClassifyRefund(t *testing.T) {
	answer := func(code string, status int, retry bool) error {
		return fmt.Errorf("refund R1: %w", &APIError{Op: "v3 refund", HTTPStatus: status, Code: code, Message: "msg", Retryable: retry})
	}
	for _, tc := range []struct {
		err   error
		apply error // the sentinel ClassifyRefundApply adds, nil for none
		query error // the sentinel ClassifyRefundQuery adds
	}{
		{answer("NOT_ENOUGH", 403, false), ErrNotEnough, nil},
		{answer("USER_ACCOUNT_ABNORMAL", 403, false), ErrRefundRefused, nil},
		{answer("INVALID_REQUEST", 400, false), ErrRefundRefused, nil},
		{answer("PARAM_ERROR", 400, false), ErrRefundRefused, nil},
		{answer("NO_AUTH", 403, false), ErrRefundRefused, nil},
		{answer("RESOURCE_NOT_EXISTS", 404, false), ErrRefundRefused, ErrRefundNotExist},
		{answer("SIGN_ERROR", 401, false), nil, nil},
		{answer("MCH_NOT_EXISTS", 400, false), nil, nil},
		{answer("SYSTEM_ERROR", 500, true), nil, nil},
		// A retryable answer decides nothing, whatever its code says.
		{answer("NOT_ENOUGH", 500, true), nil, nil},
		{answer("RESOURCE_NOT_EXISTS", 503, true), nil, nil},
		{errors.New("connection reset"), nil, nil},
		{fmt.Errorf("answer: %w", ErrBadSignature), nil, nil},
	} {
		for _, c := range []struct {
			name string
			f    func(error) error
			want error
		}{{"apply", ClassifyRefundApply, tc.apply}, {"query", ClassifyRefundQuery, tc.query}} {
			got := c.f(tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("%s(%v) = %v lost the error", c.name, tc.err, got)
			}
			for _, s := range []error{ErrNotEnough, ErrRefundRefused, ErrRefundNotExist} {
				if errors.Is(got, s) != (s == c.want) {
					t.Errorf("%s(%v) = %v; matches %v: %v, want %v", c.name, tc.err, got, s, errors.Is(got, s), s == c.want)
				}
			}
		}
	}
	if ClassifyRefundApply(nil) != nil || ClassifyRefundQuery(nil) != nil {
		t.Error("nil is not nil")
	}
}
