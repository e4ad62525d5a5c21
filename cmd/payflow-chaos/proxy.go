package main

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"

	"github.com/payflow/payflow/internal/stack"
)

// proxy is the load balancer in front of the apis that WeChat's
// notifications reach: each request goes to the next api that is running
// (round robin). An api that is down or dies mid-request gets a 502, as
// from a real balancer, and the sim retries on WeChat's schedule.
type proxy struct {
	apis  []*stack.Process
	next  atomic.Uint64
	sent  atomic.Int64 // requests forwarded
	fails atomic.Int64 // requests answered 502
	rps   []*httputil.ReverseProxy
}

func newProxy(apis []*stack.Process) *proxy {
	p := &proxy{apis: apis}
	for _, a := range apis {
		rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: a.Addr})
		rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			p.fails.Add(1)
			http.Error(w, "bad gateway: "+err.Error(), http.StatusBadGateway)
		}
		p.rps = append(p.rps, rp)
	}
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := uint64(len(p.apis))
	start := p.next.Add(1)
	for i := range n {
		k := (start + i) % n
		if p.apis[k].Running() {
			p.sent.Add(1)
			p.rps[k].ServeHTTP(w, r)
			return
		}
	}
	p.fails.Add(1)
	http.Error(w, "bad gateway: no api is running", http.StatusBadGateway)
}
