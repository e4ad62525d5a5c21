package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// RetrySchedule is WeChat's wait before each re-send of a notification that
// was not accepted (after the first try), before scaling. After the last
// one WeChat gives up: 16 attempts over 24h4m.
var RetrySchedule = []time.Duration{
	15 * time.Second, 15 * time.Second, 30 * time.Second, 3 * time.Minute,
	10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 30 * time.Minute,
	30 * time.Minute, 60 * time.Minute, 3 * time.Hour, 3 * time.Hour,
	3 * time.Hour, 6 * time.Hour, 6 * time.Hour,
}

// attemptTimeout is how long WeChat waits for the merchant's reply. It is
// not scaled: a slow receiver must fail here as it would at WeChat.
const attemptTimeout = 5 * time.Second

// maxReply bounds how much of a merchant's reply is read.
const maxReply = 64 << 10

// message is one rendered notification: the request to POST and how its
// reply is judged. Every copy and re-delivery sends the same body; a v3
// message is signed afresh for each attempt (sign), as its timestamp must
// stay within the receiver's five-minute window.
type message struct {
	api      string                      // "v2" or "v3"
	url      string                      // where to POST; the notifier's default when empty
	header   http.Header                 // Content-Type
	sign     func() (http.Header, error) // optional: headers added to each attempt
	body     []byte
	accepted func(status int, body []byte) (bool, string) // the reason when not accepted
}

// delivery is one notification being sent until accepted. Its mutable
// fields are guarded by the trades mutex.
type delivery struct {
	id         int
	outTradeNo string
	msg        *message
	attempts   []Attempt
	done       bool
	delivered  bool
}

// notifier runs deliveries in goroutines tied to its context.
type notifier struct {
	ctx      context.Context
	url      string
	client   *http.Client
	schedule []time.Duration // already scaled
	store    *trades
	log      *slog.Logger
	refused  func() // called for a 200 reply that is no acknowledgement (a malformed one); may be nil

	mu     sync.Mutex // guards closed and wg.Add
	closed bool
	wg     sync.WaitGroup
}

func newNotifier(ctx context.Context, url string, scale float64, store *trades, log *slog.Logger) *notifier {
	// Notifications go straight to the merchant, never through a proxy
	// configured in the environment.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil
	sched := make([]time.Duration, len(RetrySchedule))
	for i, d := range RetrySchedule {
		sched[i] = time.Duration(float64(d) * scale)
	}
	return &notifier{
		ctx: ctx, url: url, store: store, log: log, schedule: sched,
		client: &http.Client{
			Transport: transport,
			Timeout:   attemptTimeout,
			// WeChat does not follow redirects: a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// start sends ds: all at once when concurrent, otherwise back to back, each
// first try after the previous one's. Each then retries on its own.
func (n *notifier) start(ds []*delivery, concurrent bool) {
	if concurrent || len(ds) == 1 {
		for _, d := range ds {
			n.spawn(d, nil)
		}
		return
	}
	n.spawnFunc(func() {
		for _, d := range ds {
			first := make(chan struct{})
			if !n.spawn(d, first) {
				return
			}
			select {
			case <-first:
			case <-n.ctx.Done():
				return
			}
		}
	})
}

// spawn runs d in a goroutine; first is closed after its first attempt.
func (n *notifier) spawn(d *delivery, first chan struct{}) bool {
	return n.spawnFunc(func() { n.run(d, first) })
}

func (n *notifier) spawnFunc(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// wait stops new deliveries and waits for the running ones, which end
// when the notifier's context is cancelled.
func (n *notifier) wait() {
	n.mu.Lock()
	n.closed = true
	n.mu.Unlock()
	n.wg.Wait()
	n.client.CloseIdleConnections()
}

// run makes d's attempts until one is accepted or the schedule runs out.
// When the context ends first, the delivery is abandoned as it stands.
func (n *notifier) run(d *delivery, first chan struct{}) {
	log := n.log.With("out_trade_no", d.outTradeNo, "delivery", d.id, "api", d.msg.api)
	for i := 0; ; i++ {
		if i > 0 && !sleep(n.ctx, n.schedule[i-1]) {
			return
		}
		a := n.attempt(d.msg)
		if n.ctx.Err() != nil {
			return
		}
		last := i == len(n.schedule)
		if !a.Accepted && a.HTTPStatus == http.StatusOK && n.refused != nil {
			n.refused()
		}
		n.store.recordAttempt(d, a, a.Accepted || last, a.Accepted)
		log.Info("notification attempt", "attempt", i+1, "http_status", a.HTTPStatus, "accepted", a.Accepted, "error", a.Error)
		if i == 0 && first != nil {
			close(first)
		}
		if a.Accepted {
			return
		}
		if last {
			log.Warn("notification given up", "attempts", i+1)
			return
		}
	}
}

// attempt POSTs msg once and judges the reply.
func (n *notifier) attempt(msg *message) Attempt {
	a := Attempt{At: time.Now()}
	url := msg.url
	if url == "" {
		url = n.url
	}
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, url, bytes.NewReader(msg.body))
	if err != nil {
		a.Error = err.Error()
		return a
	}
	for k, v := range msg.header {
		req.Header[k] = v
	}
	if msg.sign != nil {
		h, err := msg.sign()
		if err != nil {
			a.Error = "sign: " + err.Error()
			return a
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	resp, err := n.client.Do(req)
	if err != nil {
		a.Error = errorText(err)
		return a
	}
	defer resp.Body.Close()
	a.HTTPStatus = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if err != nil {
		a.Error = "read reply: " + errorText(err)
		return a
	}
	a.Accepted, a.Error = msg.accepted(resp.StatusCode, body)
	return a
}

func errorText(err error) string {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("no reply within %s", attemptTimeout)
	}
	return err.Error()
}

// sleep waits d or until ctx ends, reporting whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// probeThenStart sends a signature probe of msg (a v3 notification whose
// Wechatpay-Signature starts with WECHATPAY/SIGNTEST/, as WeChat sends on
// purpose), records the merchant's answer on the trade, and then starts
// the real deliveries ds.
func (n *notifier) probeThenStart(outTradeNo string, msg *message, ds []*delivery, concurrent bool) {
	n.spawnFunc(func() {
		probe := *msg
		probe.sign = func() (http.Header, error) {
			h, err := msg.sign()
			if err != nil {
				return nil, err
			}
			h.Set("Wechatpay-Signature", probeSignature())
			return h, nil
		}
		probe.accepted = func(status int, _ []byte) (bool, string) {
			if status >= 200 && status < 300 {
				return true, fmt.Sprintf("HTTP status %d: the probe was taken for a notification", status)
			}
			return false, fmt.Sprintf("refused with HTTP status %d, as it should be", status)
		}
		a := n.attempt(&probe)
		if n.ctx.Err() != nil {
			return
		}
		n.store.recordProbe(outTradeNo, a)
		n.log.Info("signature probe", "out_trade_no", outTradeNo, "http_status", a.HTTPStatus, "taken", a.Accepted)
		n.start(ds, concurrent)
	})
}
