package sim

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/payflow/payflow/payment"
	"github.com/payflow/payflow/wechatpay/apiv2"
)

// maxV2Request bounds the XML body of an API v2 call.
const maxV2Request = 64 << 10

// foreignAppID is the app id a tamper=appid notification carries.
const foreignAppID = "wx0000000000foreign"

// notice is what a notification announces, in any API version.
type notice struct {
	facts
	ResultCode   string // SUCCESS, or FAIL for a failed payment
	SignType     string // v2 only: MD5 or HMAC-SHA256
	WithSignType bool   // v2 only: the notification carries (and signs) sign_type
	Tamper       string // "", "amount", "sign" or "appid"
	PlatformKey  string // v3 only: the identity that signs; the default when empty
}

// notificationFormat renders notifications for one API version.
type notificationFormat interface {
	render(n notice) (*message, error)
}

// v2Format renders API v2 XML notifications signed with the API key.
type v2Format struct {
	appID, mchID, apiKey string
}

func (f v2Format) render(n notice) (*message, error) {
	p := map[string]string{
		"return_code":  "SUCCESS",
		"appid":        f.appID,
		"mch_id":       f.mchID,
		"nonce_str":    newNonce(),
		"result_code":  n.ResultCode,
		"openid":       n.OpenID,
		"is_subscribe": "N",
		"trade_type":   n.TradeType,
		"bank_type":    "OTHERS",
		"total_fee":    strconv.FormatInt(n.AmountFen, 10),
		"fee_type":     payment.DefaultCurrency,
		"cash_fee":     strconv.FormatInt(n.AmountFen, 10),
		"out_trade_no": n.OutTradeNo,
		"attach":       n.Attach,
	}
	if n.ResultCode == "SUCCESS" {
		p["transaction_id"] = n.TransactionID
		p["time_end"] = apiv2.FormatTime(n.TimeEnd)
	} else {
		p["err_code"], p["err_code_des"] = "PAYERROR", "支付失败"
		delete(p, "cash_fee")
		delete(p, "bank_type")
	}
	if n.WithSignType {
		p["sign_type"] = n.SignType
	}
	if n.Tamper == "appid" {
		p["appid"] = foreignAppID
	}
	sign, err := signV2(p, f.apiKey, n.SignType)
	if err != nil {
		return nil, fmt.Errorf("sign notification: %w", err)
	}
	p["sign"] = sign
	switch n.Tamper {
	case "amount":
		p["total_fee"] = strconv.FormatInt(n.AmountFen+1, 10)
	case "sign":
		p["sign"] = corrupt(sign)
	}
	return &message{
		api:      "v2",
		header:   http.Header{"Content-Type": {"text/xml"}},
		body:     apiv2.EncodeXML(p),
		accepted: v2Accepted,
	}, nil
}

// corrupt changes the first hex digit of a sign.
func corrupt(sign string) string {
	if sign == "" {
		return "0"
	}
	c := byte('0')
	if sign[0] == '0' {
		c = '1'
	}
	return string(c) + sign[1:]
}

// v2Accepted is WeChat's rule for a merchant's reply (回调通知注意事项):
// HTTP 200 and well-formed XML with return_code SUCCESS. Plain "success",
// JSON, HTML and XML with newlines or spaces between its tags are failures,
// and the notification is sent again.
func v2Accepted(status int, body []byte) (bool, string) {
	if status != http.StatusOK {
		return false, fmt.Sprintf("HTTP status %d", status)
	}
	trimmed := bytes.TrimSpace(body)
	if err := tightXML(trimmed); err != nil {
		return false, "reply is not well-formed API v2 XML: " + err.Error()
	}
	p, err := apiv2.DecodeXML(trimmed)
	if err != nil {
		return false, "reply is not API v2 XML"
	}
	if p["return_code"] != "SUCCESS" {
		return false, fmt.Sprintf("return_code %q return_msg %q", clip(p["return_code"]), clip(p["return_msg"]))
	}
	return true, ""
}

// tightXML rejects text (whitespace included) between the tags of an
// <xml> reply: inside a field is the value, between fields nothing.
func tightXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth != 2 && len(t) > 0 {
				return errors.New("text or whitespace between the tags")
			}
		}
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// tradeStateDesc is WeChat's description of each trade state.
var tradeStateDesc = map[string]string{
	payment.TradeSuccess:    "支付成功",
	payment.TradeRefund:     "转入退款",
	payment.TradeNotPay:     "订单未支付",
	payment.TradeClosed:     "订单已关闭",
	payment.TradeRevoked:    "已撤销（刷卡支付）",
	payment.TradeUserPaying: "用户支付中",
	payment.TradePayError:   "支付失败",
	payment.TradeAccept:     "已接收，等待扣款",
}

// handleV2OrderQuery serves POST /pay/orderquery like WeChat: transport
// and signature problems as return_code FAIL (unsigned), everything else
// signed with the request's sign_type.
func (s *Server) handleV2OrderQuery(w http.ResponseWriter, r *http.Request) {
	log := s.log.With("api", "v2", "op", "orderquery")
	body, err := readBody(w, r, maxV2Request)
	if !sleep(r.Context(), s.cfg.QueryDelay) { // WeChat's latency, whatever the answer
		return // the caller went away
	}
	if err != nil {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "请求体过大或读取失败"})
		return
	}
	req, err := apiv2.DecodeXML(body)
	if err != nil {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "XML格式错误"})
		return
	}
	if err := checkV2Request(req, s.cfg.APIKey); err != nil {
		log.Info("order query with a bad signature", "error", err)
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "签名错误"})
		return
	}
	if req["appid"] != s.cfg.AppID || req["mch_id"] != s.cfg.MchID {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "appid和mch_id不匹配"})
		return
	}
	if req["out_trade_no"] == "" && req["transaction_id"] == "" {
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "缺少参数out_trade_no或transaction_id"})
		return
	}

	signType := req["sign_type"]
	if signType == "" {
		signType = apiv2.SignTypeMD5
	}
	resp := map[string]string{
		"return_code": "SUCCESS",
		"return_msg":  "OK",
		"appid":       s.cfg.AppID,
		"mch_id":      s.cfg.MchID,
		"nonce_str":   newNonce(),
	}
	f, ok := s.trades.query(req["out_trade_no"], req["transaction_id"])
	if !ok {
		resp["result_code"], resp["err_code"], resp["err_code_des"] = "FAIL", "ORDERNOTEXIST", "此交易订单号不存在"
	} else {
		resp["result_code"] = "SUCCESS"
		resp["out_trade_no"] = f.OutTradeNo
		resp["trade_state"] = f.State
		resp["trade_state_desc"] = tradeStateDesc[f.State]
		resp["total_fee"] = strconv.FormatInt(f.AmountFen, 10)
		resp["fee_type"] = payment.DefaultCurrency
		resp["openid"] = f.OpenID
		resp["trade_type"] = f.TradeType
		resp["attach"] = f.Attach
		if f.State == payment.TradeSuccess || f.State == payment.TradeRefund {
			resp["transaction_id"] = f.TransactionID
			resp["time_end"] = apiv2.FormatTime(f.TimeEnd)
			resp["cash_fee"] = resp["total_fee"]
			resp["is_subscribe"] = "N"
			resp["bank_type"] = "OTHERS"
		}
	}
	// WeChat signs the answer with the request's sign_type but does not echo it.
	sign, err := signV2(resp, s.cfg.APIKey, signType)
	if err != nil {
		log.Error("sign order query answer", "error", err)
		writeV2(w, map[string]string{"return_code": "FAIL", "return_msg": "系统错误"})
		return
	}
	resp["sign"] = sign
	log.Info("order query", "out_trade_no", f.OutTradeNo, "found", ok, "trade_state", f.State, "sign_type", signType)
	writeV2(w, resp)
}

// writeV2 writes an API v2 XML answer with HTTP 200, as WeChat does even
// for errors.
func writeV2(w http.ResponseWriter, p map[string]string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(apiv2.EncodeXML(p))
}
