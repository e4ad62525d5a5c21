package sim

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/payflow/payflow/wechatpay/apiv2"
)

// Faults the sandbox injects into its answers to the merchant's calls, as
// WeChat Pay (or something between the merchant and WeChat) answers them
// now and then. Each names what the merchant receives instead of the real
// answer; the trade itself is unchanged (a call that got a fault did
// nothing at WeChat).
const (
	// FaultRateLimited: v3 429 FREQUENCY_LIMITED, v2 result_code FAIL
	// err_code FREQUENCY_LIMITED; signed.
	FaultRateLimited = "rate_limited"
	// FaultSystemError: v3 500 SYSTEM_ERROR, v2 result_code FAIL err_code
	// SYSTEMERROR; signed.
	FaultSystemError = "system_error"
	// FaultUnavailable: a gateway's 503 page, unsigned.
	FaultUnavailable = "unavailable"
	// FaultAccepted: v3 202 with an empty body, signed ("call again with
	// the same parameters"); v2 HTTP 202, unsigned.
	FaultAccepted = "accepted"
	// FaultForbidden: a proxy's 403 page, unsigned.
	FaultForbidden = "forbidden"
	// FaultNotFound: a proxy's 404 page, unsigned.
	FaultNotFound = "not_found"
	// FaultUnsignedDecision: WeChat's decisive words without WeChat's
	// signature: ORDER_NOT_EXIST (query), ORDER_CLOSED (close), ORDERPAID
	// (prepay), as v3 JSON without Wechatpay-* headers or v2 XML without
	// sign. A merchant that acts on it closes, forgets or refuses a payment
	// on nobody's word.
	FaultUnsignedDecision = "unsigned_decision"
	// FaultSystemErrorUnsigned: v2 return_code SUCCESS, result_code FAIL,
	// err_code SYSTEMERROR without sign and ids, as WeChat sends it; v3 500
	// SYSTEM_ERROR without signature headers.
	FaultSystemErrorUnsigned = "systemerror_unsigned"
	// FaultBadSignature: the real answer with its signature (v3
	// Wechatpay-Signature, v2 sign) corrupted.
	FaultBadSignature = "bad_signature"
	// FaultUnknownKey: v3 only: the real answer signed by a WeChat Pay key
	// the merchant has not configured yet (WeChat rotated first).
	FaultUnknownKey = "unknown_key"
	// FaultClockSkew: v3 only: the real answer signed with a timestamp ten
	// minutes off the merchant's clock.
	FaultClockSkew = "clock_skew"
	// FaultSlow: the real answer, after SlowAnswer.
	FaultSlow = "slow"
)

// Faults injected into notifications (calls NotifyV2 and NotifyV3).
const (
	// FaultProbe: v3 only: before the notification, a copy whose
	// Wechatpay-Signature starts with WECHATPAY/SIGNTEST/, which the
	// merchant must refuse.
	FaultProbe = "probe"
	// FaultDuplicate: extra copies of the notification, sent concurrently.
	FaultDuplicate = "duplicate"
)

// The call names of notifications in fault rules and counts.
const (
	NotifyV2 = "v2.notify"
	NotifyV3 = "v3.notify"
)

// SlowAnswer is how long a FaultSlow answer waits: close to the 5 s a
// merchant's own timeouts are often set to. It is not scaled.
const SlowAnswer = 4500 * time.Millisecond

// skew is how far a FaultClockSkew signature's timestamp is off.
const skew = 10 * time.Minute

// unknownKeyID is the id of the key a FaultUnknownKey answer is signed by.
const unknownKeyID = "PUB_KEY_ID_0000000000000029991231000000000099"

// v2Only and v3Only list the kinds one API version cannot have.
var (
	apiKinds = []string{FaultRateLimited, FaultSystemError, FaultUnavailable, FaultAccepted, FaultForbidden, FaultNotFound,
		FaultUnsignedDecision, FaultSystemErrorUnsigned, FaultBadSignature, FaultUnknownKey, FaultClockSkew, FaultSlow}
	v3OnlyKinds = []string{FaultUnknownKey, FaultClockSkew}
	notifyKinds = []string{FaultProbe, FaultDuplicate}
)

// kindsFor lists the fault kinds a call can get.
func kindsFor(call string) []string {
	switch {
	case call == NotifyV3:
		return notifyKinds
	case call == NotifyV2:
		return []string{FaultDuplicate} // v2 has no signature header to probe with
	case strings.HasPrefix(call, "v3."):
		return apiKinds
	}
	var ks []string
	for _, k := range apiKinds {
		if !slices.Contains(v3OnlyKinds, k) {
			ks = append(ks, k)
		}
	}
	return ks
}

// FaultRule is a fault to inject: into the next Times calls named Call (a
// registered call such as v3.query or v2.orderquery, v2.notify or
// v3.notify, or "*" for every API call), optionally only those about
// OutTradeNo.
type FaultRule struct {
	ID         int    `json:"id"`
	Call       string `json:"call"`
	Kind       string `json:"kind"`
	Times      int    `json:"times"`                  // calls left to fault; -1: every call; 0 in a request means 1
	OutTradeNo string `json:"out_trade_no,omitempty"` // only calls about this trade
}

// FaultsView is GET /sim/faults: the random model, the rules still
// pending and what was injected so far, by call and kind.
type FaultsView struct {
	Rate     float64                   `json:"rate"`  // SIM_FAULTS
	Seed     int64                     `json:"seed"`  // SIM_FAULT_SEED (as used)
	Calls    []string                  `json:"calls"` // the calls random faults go to (SIM_FAULT_CALLS, default all)
	Kinds    []string                  `json:"kinds"` // the kinds random faults are drawn from (SIM_FAULT_KINDS, default all)
	Rules    []FaultRule               `json:"rules"`
	Injected map[string]map[string]int `json:"injected"` // by call, by kind
	Total    int                       `json:"total"`    // all injected faults
	// Behaviours counts what the sandbox does by default because WeChat
	// does it, not as an injected fault: close_too_early (a v2 closeorder
	// within 5 minutes of the order refused with SYSTEMERROR),
	// reply_refused (a merchant's reply that was not a well-formed
	// acknowledgement, so the notification is sent again).
	Behaviours map[string]int `json:"behaviours"`
}

// faults is the sandbox's fault model: rules set by the operator, and
// random faults drawn from a seeded source.
type faults struct {
	slow  time.Duration // how long FaultSlow waits (SlowAnswer; tests shorten it)
	rate  float64
	seed  int64
	calls []string // random faults only for these calls; nil: all
	kinds []string // random faults drawn from these; nil: all that fit

	mu         sync.Mutex
	rnd        *mrand.Rand
	rules      []*FaultRule
	lastID     int
	injected   map[string]map[string]int
	total      int
	behaviours map[string]int

	keyOnce    sync.Once
	unknownKey *rsa.PrivateKey
}

func newFaults(rate float64, seed int64, calls, kinds []string) *faults {
	return &faults{slow: SlowAnswer, rate: rate, seed: seed, calls: calls, kinds: kinds,
		rnd: mrand.New(mrand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)), injected: map[string]map[string]int{},
		behaviours: map[string]int{}}
}

// add checks rules and appends them; it returns them with their ids.
func (f *faults) add(rules []FaultRule) ([]FaultRule, error) {
	for i := range rules {
		r := &rules[i]
		if r.Call != "*" && !knownCall(r.Call) {
			return nil, fmt.Errorf("call %q is none of %s or *", r.Call, strings.Join(registeredCalls(), ", "))
		}
		if r.Call == "*" {
			if !slices.Contains(apiKinds, r.Kind) {
				return nil, fmt.Errorf("kind %q is none of %s", r.Kind, strings.Join(apiKinds, ", "))
			}
		} else if !slices.Contains(kindsFor(r.Call), r.Kind) {
			return nil, fmt.Errorf("call %s cannot get kind %q (it can get %s)", r.Call, r.Kind, strings.Join(kindsFor(r.Call), ", "))
		}
		if r.Times == 0 {
			r.Times = 1
		}
		if r.Times < -1 {
			return nil, errors.New("times must be -1 (every call) or more than 0")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range rules {
		f.lastID++
		rules[i].ID = f.lastID
		r := rules[i]
		f.rules = append(f.rules, &r)
	}
	return rules, nil
}

// clear drops every pending rule; the counts stay.
func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// pick decides whether this call about outTradeNo gets a fault: the
// oldest matching rule first, else a random draw. It counts what it picks.
func (f *faults) pick(call, outTradeNo string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, r := range f.rules {
		if (r.Call != call && !(r.Call == "*" && !isNotify(call))) || (r.OutTradeNo != "" && r.OutTradeNo != outTradeNo) ||
			!slices.Contains(kindsFor(call), r.Kind) {
			continue
		}
		if r.Times > 0 {
			r.Times--
			if r.Times == 0 {
				f.rules = slices.Delete(f.rules, i, i+1)
			}
		}
		f.count(call, r.Kind)
		return r.Kind, true
	}
	if f.rate <= 0 || (f.calls != nil && !slices.Contains(f.calls, call)) || f.rnd.Float64() >= f.rate {
		return "", false
	}
	var choice []string
	for _, k := range kindsFor(call) {
		if f.kinds == nil || slices.Contains(f.kinds, k) {
			choice = append(choice, k)
		}
	}
	if len(choice) == 0 {
		return "", false
	}
	k := choice[f.rnd.IntN(len(choice))]
	f.count(call, k)
	return k, true
}

// intN draws from the seeded source, under the lock.
func (f *faults) intN(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rnd.IntN(n)
}

// record counts a fault injected on the operator's explicit request
// (PayRequest.Probe), outside the rules.
func (f *faults) record(call, kind string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count(call, kind)
}

// behaved counts a default behaviour (see FaultsView.Behaviours).
func (f *faults) behaved(what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.behaviours[what]++
}

func isNotify(call string) bool { return call == NotifyV2 || call == NotifyV3 }

func (f *faults) count(call, kind string) {
	if f.injected[call] == nil {
		f.injected[call] = map[string]int{}
	}
	f.injected[call][kind]++
	f.total++
}

func (f *faults) view() FaultsView {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := FaultsView{Rate: f.rate, Seed: f.seed, Calls: f.calls, Kinds: f.kinds, Rules: []FaultRule{},
		Injected: map[string]map[string]int{}, Total: f.total, Behaviours: map[string]int{}}
	for k, n := range f.behaviours {
		v.Behaviours[k] = n
	}
	if v.Calls == nil {
		v.Calls = registeredCalls()
	}
	if v.Kinds == nil {
		v.Kinds = slices.Concat(apiKinds, notifyKinds)
	}
	for _, r := range f.rules {
		v.Rules = append(v.Rules, *r)
	}
	for call, m := range f.injected {
		v.Injected[call] = map[string]int{}
		for k, n := range m {
			v.Injected[call][k] = n
		}
	}
	return v
}

// unknownSigner is the key of FaultUnknownKey, made on first use.
func (f *faults) unknownSigner() *identity {
	f.keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		f.unknownKey = k
	})
	return &identity{id: unknownKeyID, key: f.unknownKey}
}

// The calls of the sandbox's API paths, registered with Server.call. Other
// endpoints (refunds, bills) register theirs the same way and get the same
// faults.
var (
	callsMu sync.Mutex
	calls   = map[string]bool{NotifyV2: true, NotifyV3: true}
)

func registerCall(name string) {
	callsMu.Lock()
	defer callsMu.Unlock()
	calls[name] = true
}

func knownCall(name string) bool {
	callsMu.Lock()
	defer callsMu.Unlock()
	return calls[name]
}

func registeredCalls() []string {
	callsMu.Lock()
	defer callsMu.Unlock()
	names := make([]string, 0, len(calls))
	for n := range calls {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// call wraps the handler of one WeChat API path: it names the call for the
// fault model (a name beginning v3. is an API v3 call, any other API v2)
// and, when the model picks a fault for it, answers with the fault instead
// of (or around) h.
func (s *Server) call(name string, h http.HandlerFunc) http.HandlerFunc {
	registerCall(name)
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(w, r, maxV3Request)
		if err != nil {
			h(w, r) // too large or unreadable: the handler answers it
			return
		}
		r.Body = nopBody(body)
		kind, ok := s.faults.pick(name, tradeOf(r, body))
		if !ok {
			h(w, r)
			return
		}
		s.log.Info("fault injected", "call", name, "kind", kind, "out_trade_no", tradeOf(r, body))
		s.inject(w, r, name, kind, body, h)
	}
}

// tradeOf finds the out_trade_no a call is about: in its path, its JSON
// body or its XML body.
func tradeOf(r *http.Request, body []byte) string {
	if no := r.PathValue("out_trade_no"); no != "" {
		return no
	}
	var j struct {
		OutTradeNo string `json:"out_trade_no"`
	}
	if json.Unmarshal(body, &j) == nil && j.OutTradeNo != "" {
		return j.OutTradeNo
	}
	if p, err := apiv2.DecodeXML(body); err == nil {
		return p["out_trade_no"]
	}
	return ""
}

// Pages a proxy or gateway answers with.
const (
	page403 = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	page404 = "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
	page503 = "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n</body>\r\n</html>\r\n"
)

// inject answers call with a fault of kind.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, call, kind string, body []byte, h http.HandlerFunc) {
	v3 := strings.HasPrefix(call, "v3.")
	log := s.log.With("call", call)
	if v3 && s.v3 == nil {
		h(w, r) // no v3 keys: the handler answers 500 anyway
		return
	}
	switch kind {
	case FaultSlow:
		if !sleep(r.Context(), s.faults.slow) {
			return
		}
		h(w, r)
	case FaultUnavailable:
		writePage(w, http.StatusServiceUnavailable, page503)
	case FaultForbidden:
		writePage(w, http.StatusForbidden, page403)
	case FaultNotFound:
		writePage(w, http.StatusNotFound, page404)
	case FaultUnsignedDecision:
		code, status, v2code := "ORDER_NOT_EXIST", http.StatusNotFound, "ORDERNOTEXIST"
		switch {
		case strings.Contains(call, "close"):
			code, status, v2code = "ORDER_CLOSED", http.StatusBadRequest, "ORDERCLOSED"
		case strings.Contains(call, "prepay") || strings.Contains(call, "unifiedorder"):
			code, status, v2code = "ORDERPAID", http.StatusBadRequest, "ORDERPAID"
		}
		if v3 {
			writeJSON(w, status, v3Error{Code: code, Message: code})
			return
		}
		writeV2(w, map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "appid": s.cfg.AppID, "mch_id": s.cfg.MchID,
			"nonce_str": newNonce(), "result_code": "FAIL", "err_code": v2code, "err_code_des": v2code})
	case FaultSystemErrorUnsigned:
		if v3 {
			writeJSON(w, http.StatusInternalServerError, v3Error{Code: "SYSTEM_ERROR", Message: "系统错误"})
			return
		}
		writeV2(w, map[string]string{"return_code": "SUCCESS", "return_msg": "OK", "result_code": "FAIL",
			"err_code": "SYSTEMERROR", "err_code_des": "系统错误"})
	case FaultRateLimited, FaultSystemError:
		status, v3code, v2code, desc := http.StatusTooManyRequests, "FREQUENCY_LIMITED", "FREQUENCY_LIMITED", "频率超限"
		if kind == FaultSystemError {
			status, v3code, v2code, desc = http.StatusInternalServerError, "SYSTEM_ERROR", "SYSTEMERROR", "系统错误"
		}
		if v3 {
			s.writeV3(w, r, v3Fail(status, v3code, desc))
			return
		}
		req, err := apiv2.DecodeXML(body)
		if err != nil {
			req = map[string]string{}
		}
		s.writeV2Signed(w, req, v2Fail(v2code, desc), log)
	case FaultAccepted:
		if v3 {
			s.writeV3(w, r, v3Answer{status: http.StatusAccepted})
			return
		}
		w.WriteHeader(http.StatusAccepted)
	case FaultBadSignature, FaultUnknownKey, FaultClockSkew:
		// The real answer, re-signed (or corrupted) on its way out.
		rec := httptest.NewRecorder()
		h(rec, r)
		res := rec.Result()
		out := rec.Body.Bytes()
		if !v3 { // v2: corrupt the sign (the only v2 kind here)
			if p, err := apiv2.DecodeXML(out); err == nil && p["sign"] != "" {
				p["sign"] = corrupt(p["sign"])
				out = apiv2.EncodeXML(p)
			}
			copyHeader(w.Header(), res.Header)
			w.WriteHeader(res.StatusCode)
			_, _ = w.Write(out)
			return
		}
		copyHeader(w.Header(), res.Header)
		switch kind {
		case FaultBadSignature:
			w.Header().Set("Wechatpay-Signature", corrupt(res.Header.Get("Wechatpay-Signature")))
		case FaultUnknownKey, FaultClockSkew:
			ident, at := s.faults.unknownSigner(), s.now()
			if kind == FaultClockSkew {
				ident, at = s.v3.pick(r.Header.Get("Wechatpay-Serial")), at.Add(-skew)
			}
			hs, err := v3Signed(ident, at, out)
			if err != nil {
				log.Error("sign fault answer", "error", err)
			}
			for k, v := range hs {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(out)
	default:
		h(w, r)
	}
}

func writePage(w http.ResponseWriter, status int, page string) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(page))
}

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}

// nopBody gives a handler the body the middleware already read.
func nopBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// probeSignature is a Wechatpay-Signature WeChat sends on purpose to see
// that the merchant verifies: it never verifies.
func probeSignature() string {
	var b [128]byte
	_, _ = rand.Read(b[:])
	return "WECHATPAY/SIGNTEST/" + base64.StdEncoding.EncodeToString(b[:])
}
