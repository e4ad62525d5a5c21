#!/usr/bin/env python3
"""Writes the v2 notification vectors in this directory.

An implementation independent of the Go code: the signatures are computed
here with hashlib/hmac from WeChat's published rule (non-empty fields but
sign, ASCII-sorted, k=v joined by &, then &key=KEY; MD5 or HMAC-SHA256 with
the key, upper-case hex) and req_info with the `cryptography` package
(AES-256-ECB, PKCS #7, key = lower-case hex MD5 of the API key). The shapes
follow payloads published in issues: binarywang/WxJava#1585 (an HMAC-SHA256
order's notification: no sign_type, a 64-character sign, one field per line,
CDATA, bare total_fee) and #521 (coupon fields); the refund req_info follows
the <root> documents quoted in refund-notification examples. Keys, ids and
amounts are our own. Run it from this directory; it is not run by the tests.
"""
import base64, hashlib, hmac, json
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives import padding

KEY = "Pf7kQ2xW9mZr4Lt8Hc3Vb6Nd1Js5Ga0E"  # our own API v2 key, never a real one
APPID, MCHID = "wx8d3c0f1a2b4e6d79", "1612345678"


def sign(p, alg):
    s = "&".join(f"{k}={p[k]}" for k in sorted(p) if k != "sign" and p[k] != "") + "&key=" + KEY
    if alg == "MD5":
        return hashlib.md5(s.encode()).hexdigest().upper()
    return hmac.new(KEY.encode(), s.encode(), hashlib.sha256).hexdigest().upper()


def xml(p, bare=(), root="xml", sep="\n"):
    parts = [f"<{root}>"]
    for k in sorted(p):
        v = p[k]
        parts.append(f"<{k}>{v}</{k}>" if k in bare else f"<{k}><![CDATA[{v}]]></{k}>")
    parts.append(f"</{root}>")
    return sep.join(parts)


vectors = {"api_key": KEY, "appid": APPID, "mch_id": MCHID, "files": {}}

# 1. An HMAC-SHA256 order's payment notification: no sign_type.
p = {"appid": APPID, "bank_type": "OTHERS", "cash_fee": "1", "fee_type": "CNY", "is_subscribe": "N",
     "mch_id": MCHID, "nonce_str": "1764212345678", "openid": "oQ3xY5s0Vx9mAbCdEfGhIjKlMnOp",
     "out_trade_no": "PF2611270001", "result_code": "SUCCESS", "return_code": "SUCCESS",
     "time_end": "20261127101530", "total_fee": "1", "trade_type": "JSAPI",
     "transaction_id": "4200002611202611274211234567"}
p["sign"] = sign(p, "HMAC-SHA256")
open("hmac_no_sign_type.xml", "w").write(xml(p, bare=("total_fee",)))
vectors["files"]["hmac_no_sign_type.xml"] = {"kind": "payment", "sign_type": "HMAC-SHA256", "sign": p["sign"],
    "out_trade_no": p["out_trade_no"], "transaction_id": p["transaction_id"], "amount_fen": 1, "time_end": p["time_end"]}

# 2. An MD5 notification that does carry sign_type=MD5 (signed with it), with coupons.
p = {"appid": APPID, "attach": "订单附言", "bank_type": "ICBC_CREDIT", "cash_fee": "1901", "coupon_count": "2",
     "coupon_fee": "99", "coupon_fee_0": "90", "coupon_fee_1": "9", "coupon_id_0": "10292835491",
     "coupon_id_1": "10292835492", "coupon_type_0": "CASH", "coupon_type_1": "NO_CASH", "device_info": "WEB",
     "fee_type": "CNY", "is_subscribe": "Y", "mch_id": MCHID, "nonce_str": "a81d93c0b6e24f5c9e7d1b2a3c4d5e6f",
     "openid": "oQ3xY5s0Vx9mAbCdEfGhIjKlMnOp", "out_trade_no": "PF2611270002", "result_code": "SUCCESS",
     "return_code": "SUCCESS", "settlement_total_fee": "1910", "sign_type": "MD5", "time_end": "20261127102001",
     "total_fee": "2000", "trade_type": "NATIVE", "transaction_id": "4200002611202611274211234568"}
p["sign"] = sign(p, "MD5")
open("md5_sign_type_coupons.xml", "w").write(xml(p, bare=("total_fee", "cash_fee")))
vectors["files"]["md5_sign_type_coupons.xml"] = {"kind": "payment", "sign_type": "MD5", "sign": p["sign"],
    "out_trade_no": p["out_trade_no"], "transaction_id": p["transaction_id"], "amount_fen": 2000, "time_end": p["time_end"]}


def ecb(plain):
    key = hashlib.md5(KEY.encode()).hexdigest().encode()
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return base64.b64encode(enc.update(data) + enc.finalize()).decode()


def refund(name, inner, facts):
    plain = xml(inner, root="root", sep="").encode()
    outer = {"return_code": "SUCCESS", "appid": APPID, "mch_id": MCHID,
             "nonce_str": hashlib.md5(name.encode()).hexdigest(), "req_info": ecb(plain)}
    open(name, "w").write(xml(outer, sep="\n"))
    facts.update({"kind": "refund", "id": "v2r:" + hashlib.sha256(plain).hexdigest()})
    vectors["files"][name] = facts


# 3. A refund made through the API, successful.
refund("refund_success.xml", {
    "out_refund_no": "RF2611270001", "out_trade_no": "PF2611270002", "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS",
    "refund_fee": "500", "refund_id": "50300002612026112712345678901", "refund_recv_accout": "支付用户零钱",
    "refund_request_source": "API", "refund_status": "SUCCESS", "settlement_refund_fee": "500",
    "settlement_total_fee": "1910", "success_time": "2026-11-27 10:31:24", "total_fee": "2000",
    "transaction_id": "4200002611202611274211234568"},
    {"out_trade_no": "PF2611270002", "transaction_id": "4200002611202611274211234568", "out_refund_no": "RF2611270001",
     "refund_id": "50300002612026112712345678901", "status": "SUCCESS", "amount_fen": 500, "total_fen": 2000,
     "success_time": "2026-11-27T02:31:24Z", "from_portal": False})

# 4. A refund made in the merchant portal, stuck (CHANGE: ABNORMAL).
refund("refund_portal_change.xml", {
    "out_refund_no": "1003152026112700123", "out_trade_no": "PF2611270001", "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
    "refund_fee": "1", "refund_id": "50300002612026112712345678902", "refund_recv_accout": "招商银行信用卡8530",
    "refund_request_source": "VENDOR_PLATFORM", "refund_status": "CHANGE", "settlement_refund_fee": "1",
    "settlement_total_fee": "1", "total_fee": "1", "transaction_id": "4200002611202611274211234567"},
    {"out_trade_no": "PF2611270001", "transaction_id": "4200002611202611274211234567", "out_refund_no": "1003152026112700123",
     "refund_id": "50300002612026112712345678902", "status": "ABNORMAL", "amount_fen": 1, "total_fen": 1,
     "success_time": "", "from_portal": True})

json.dump(vectors, open("vectors.json", "w"), ensure_ascii=False, indent=2, sort_keys=True)
open("vectors.json", "a").write("\n")
