package sim

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// v2TimeLayout is API v2's yyyyMMddHHmmss, in Beijing time.
const v2TimeLayout = "20060102150405"

// v2Request reads, decodes and verifies an API v2 call for this merchant.
// On failure it has answered return_code FAIL (unsigned, as WeChat does)
// and returns false.
func (s *Server) v2Request(w http.ResponseWriter, r *http.Request, log *slog.Logger) (map[string]string, bool) {
	body, err := readBody(w, r, maxV2Request)
	if err != nil {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "请求体过大或读取失败"})
		return nil, false
	}
	req, err := apiv2.DecodeXML(body)
	if err != nil {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "XML格式错误"})
		return nil, false
	}
	if err := checkV2Request(req, s.cfg.APIKey); err != nil {
		log.Info("call with a bad signature", "error", err)
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "签名错误"})
		return nil, false
	}
	if req["appid"] != s.cfg.AppID || req["mch_id"] != s.cfg.MchID {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "appid和mch_id不匹配"})
		return nil, false
	}
	return req, true
}

// writeV2Signed completes resp (return_code SUCCESS, ids, nonce), signs it
// with the request's sign_type (not echoed, as at WeChat) and writes it.
func (s *Server) writeV2Signed(w http.ResponseWriter, req, resp map[string]string, log *slog.Logger) {
	resp["return_code"], resp["return_msg"] = "SUCCESS", "OK"
	resp["appid"], resp["mch_id"], resp["nonce_str"] = s.cfg.AppID, s.cfg.MchID, newNonce()
	signType := req["sign_type"]
	if signType == "" {
		signType = apiv2.SignTypeMD5
	}
	sign, err := signV2(resp, s.cfg.APIKey, signType)
	if err != nil {
		log.Error("sign answer", "error", err)
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "系统错误"})
		return
	}
	resp["sign"] = sign
	writeV2(w, resp)
}

// v2Fail is a signed business failure (return_code SUCCESS, result_code FAIL).
func v2Fail(code, desc string) map[string]string {
	return map[string]string{"result_code": "FAIL", "err_code": code, "err_code_des": desc}
}

// handleV2UnifiedOrder serves POST /pay/unifiedorder for trade_type JSAPI
// (openid required) and NATIVE. Missing or malformed parameters are
// return_code FAIL with a return_msg naming them; ORDERPAID, ORDERCLOSED
// and OUT_TRADE_NO_USED are result_code FAIL. A repeat with the same
// parameters gets the same prepay_id (and code_url).
func (s *Server) handleV2UnifiedOrder(w http.ResponseWriter, r *http.Request) {
	log := s.log.With("api", "v2", "op", "unifiedorder")
	req, ok := s.v2Request(w, r, log)
	if !ok {
		return
	}
	paramFail := func(msg string) {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": msg})
	}
	o := prepayOrder{Version: "v2", TradeType: req["trade_type"], OutTradeNo: req["out_trade_no"],
		Description: req["body"], Attach: req["attach"], NotifyURL: req["notify_url"], OpenID: req["openid"],
		SignType: req["sign_type"]}
	if o.SignType == "" {
		o.SignType = apiv2.SignTypeMD5
	}
	fen, err := strconv.ParseInt(req["total_fee"], 10, 64)
	switch {
	case o.Description == "" || utf8.RuneCountInString(o.Description) > 128:
		paramFail("body参数长度有误")
		return
	case !payment.ValidOutTradeNo(o.OutTradeNo):
		paramFail("out_trade_no参数格式错误")
		return
	case err != nil || fen <= 0:
		paramFail("total_fee参数格式错误")
		return
	case req["spbill_create_ip"] == "":
		paramFail("缺少参数spbill_create_ip")
		return
	case !notifyURLOK(o.NotifyURL):
		paramFail("notify_url参数格式错误")
		return
	case o.TradeType != "JSAPI" && o.TradeType != "NATIVE":
		paramFail("trade_type参数格式错误（模拟器支持 JSAPI、NATIVE）")
		return
	case o.TradeType == "JSAPI" && o.OpenID == "":
		paramFail("JSAPI支付必须传openid")
		return
	case req["fee_type"] != "" && req["fee_type"] != payment.DefaultCurrency:
		paramFail("fee_type参数格式错误（仅支持 CNY）")
		return
	case utf8.RuneCountInString(o.Attach) > 127:
		paramFail("attach参数长度有误")
		return
	}
	o.AmountFen = fen
	if s := req["time_expire"]; s != "" {
		t, err := time.ParseInLocation(v2TimeLayout, s, beijing)
		if err != nil {
			paramFail("time_expire参数格式错误")
			return
		}
		o.TimeExpire = t
	}
	res, err := s.trades.prepay(o, s.now())
	var resp map[string]string
	switch {
	case errors.Is(err, errOrderPaid):
		resp = v2Fail("ORDERPAID", "该订单已支付")
	case errors.Is(err, errOrderClosed):
		resp = v2Fail("ORDERCLOSED", "订单已关闭")
	case errors.Is(err, errOutTradeNoUsed):
		resp = v2Fail("OUT_TRADE_NO_USED", "商户订单号重复")
	case err != nil:
		resp = v2Fail("SYSTEMERROR", "系统错误")
	default:
		resp = map[string]string{"result_code": "SUCCESS", "prepay_id": res.PrepayID, "trade_type": res.TradeType}
		if res.CodeURL != "" {
			resp["code_url"] = res.CodeURL
		}
	}
	log.Info("prepay", "out_trade_no", o.OutTradeNo, "trade_type", o.TradeType, "amount_fen", o.AmountFen, "result", resp["err_code"])
	s.writeV2Signed(w, req, resp, log)
}

// closeAfter is how long after an order is made WeChat refuses to close
// it over API v2 ("订单生成后不能马上调用关单接口，最短调用时间间隔为5分钟"),
// before SIM_TIME_SCALE.
const closeAfter = 5 * time.Minute

// handleV2CloseOrder serves POST /pay/closeorder. Closing a closed trade
// answers result_code FAIL err_code ORDERCLOSED, as WeChat documents it
// ("订单已关闭，无需继续调用"): a caller treats it as closed. Closing sooner
// than closeAfter (scaled) after the order was made is refused the way
// merchants report WeChat refusing it: a signed result_code FAIL, err_code
// SYSTEMERROR, "system error" (WeChat's developer community,
// pay/doc/0006640d1d88c08864720360966400); the trade stays open. A paid
// trade is ORDERPAID whenever asked.
func (s *Server) handleV2CloseOrder(w http.ResponseWriter, r *http.Request) {
	log := s.log.With("api", "v2", "op", "closeorder")
	req, ok := s.v2Request(w, r, log)
	if !ok {
		return
	}
	no := req["out_trade_no"]
	if no == "" {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "缺少参数out_trade_no"})
		return
	}
	if made, open := s.trades.openSince(no); open && s.now().Sub(made) < time.Duration(float64(closeAfter)*s.cfg.TimeScale) {
		s.faults.behaved("close_too_early")
		log.Info("close refused: too soon after the order", "out_trade_no", no)
		s.writeV2Signed(w, req, v2Fail("SYSTEMERROR", "system error"), log)
		return
	}
	already, err := s.trades.close(no, s.now())
	var resp map[string]string
	switch {
	case errors.Is(err, errNoTrade):
		resp = v2Fail("ORDERNOTEXIST", "此交易订单号不存在")
	case errors.Is(err, errOrderPaid):
		resp = v2Fail("ORDERPAID", "订单已支付，不能发起关单")
	case err != nil:
		resp = v2Fail("SYSTEMERROR", "系统错误")
	case already:
		resp = v2Fail("ORDERCLOSED", "订单已关闭，无需继续调用")
	default:
		resp = map[string]string{"result_code": "SUCCESS"}
	}
	log.Info("close", "out_trade_no", no, "result", resp["err_code"])
	s.writeV2Signed(w, req, resp, log)
}
