package api

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/store"
)

// maxOrderBody caps POST /orders bodies.
const maxOrderBody = 16 << 10

// createOrderRequest is POST /orders' body, as docs/interface.md fixes it.
type createOrderRequest struct {
	OutTradeNo     string `json:"out_trade_no"`
	AmountFen      int64  `json:"amount_fen"`
	Description    string `json:"description"`
	TradeType      string `json:"trade_type"`
	OpenID         string `json:"openid"`
	TimeoutSeconds int64  `json:"timeout_seconds"`
}

func (req *createOrderRequest) validate() error {
	if req.OutTradeNo != "" && !payment.ValidOutTradeNo(req.OutTradeNo) {
		return errors.New("out_trade_no must be 6-32 of A-Z a-z 0-9 _ - | *")
	}
	if req.AmountFen <= 0 {
		return errors.New("amount_fen must be an integer > 0")
	}
	if utf8.RuneCountInString(req.Description) > 127 || !utf8.ValidString(req.Description) {
		return errors.New("description must be valid UTF-8 of at most 127 characters")
	}
	if req.TimeoutSeconds < 0 || req.TimeoutSeconds > maxTimeoutSeconds {
		return fmt.Errorf("timeout_seconds must be between 1 and %d", maxTimeoutSeconds)
	}
	switch req.TradeType {
	case "":
		if req.OpenID != "" {
			return errors.New("openid goes with trade_type JSAPI")
		}
	case payment.TradeTypeJSAPI:
		if req.OpenID == "" || len(req.OpenID) > 128 {
			return errors.New("trade_type JSAPI needs the payer's openid (at most 128 characters)")
		}
	case payment.TradeTypeNative:
		if req.OpenID != "" {
			return errors.New("openid goes with trade_type JSAPI")
		}
	default:
		return errors.New("trade_type must be JSAPI or NATIVE")
	}
	if req.TradeType != "" && req.Description == "" {
		return errors.New("description is required to prepay at WeChat Pay")
	}
	return nil
}

// maxTimeoutSeconds caps timeout_seconds: an unset time_expire makes a
// WeChat order payable for 7 days, so nothing longer makes sense.
const maxTimeoutSeconds = 7 * 24 * 3600

// decodeOrderRequest parses the body strictly (decodeJSON: one JSON
// object, the interface's fields only, integers for amounts, nothing after
// it) and validates it.
func decodeOrderRequest(w http.ResponseWriter, r *http.Request) (createOrderRequest, error) {
	var req createOrderRequest
	if err := decodeJSON(w, r, maxOrderBody, &req); err != nil {
		return req, err
	}
	return req, req.validate()
}

func (s *Server) createOrder(w http.ResponseWriter, r *http.Request) {
	req, err := decodeOrderRequest(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.TradeType != "" && !s.CanPrepay {
		writeError(w, http.StatusServiceUnavailable, "prepay is not configured on this server (WECHATPAY_NOTIFY_URL)")
		return
	}
	if req.OutTradeNo == "" {
		req.OutTradeNo = newOutTradeNo(s.now())
	}
	timeout := s.OrderTimeout
	if req.TimeoutSeconds > 0 {
		timeout = time.Duration(req.TimeoutSeconds) * time.Second
	}
	order, err := s.Orders.CreateOrder(r.Context(), store.NewOrder{
		OutTradeNo: req.OutTradeNo, AmountFen: req.AmountFen, Currency: payment.DefaultCurrency, Description: req.Description,
		ExpiresAt: s.now().Add(timeout), TradeType: req.TradeType, OpenID: req.OpenID,
	})
	if errors.Is(err, store.ErrDuplicate) {
		writeError(w, http.StatusConflict, "out_trade_no "+req.OutTradeNo+" already exists")
		return
	}
	if err != nil {
		s.Logger.Error("create order", "out_trade_no", req.OutTradeNo, "err", err)
		writeError(w, http.StatusInternalServerError, "could not create the order")
		return
	}
	// The order is durable now. Its workflow owns it from here; should the
	// start fail, the safety net starts it later.
	if order.TradeType != "" {
		if !s.prepay(w, r, &order) {
			return
		}
	} else if _, err := s.Gateway.Create(r.Context(), order); err != nil {
		s.Logger.Error("start order workflow", "out_trade_no", order.OutTradeNo, "err", err)
	}
	s.Logger.Info("order created", "out_trade_no", order.OutTradeNo, "amount_fen", order.AmountFen, "trade_type", order.TradeType)
	writeJSON(w, http.StatusCreated, order)
}

func (s *Server) getOrder(w http.ResponseWriter, r *http.Request) {
	if order, ok := s.loadOrder(w, r); ok {
		writeJSON(w, http.StatusOK, order)
	}
}

// newOutTradeNo makes an order number: "PF", the UTC time to the second and
// 10 random digits, 26 characters in all.
func newOutTradeNo(now time.Time) string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e10))
	if err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	return fmt.Sprintf("PF%s%010d", now.UTC().Format("20060102150405"), n.Int64())
}
