package main

import (
	"math/rand/v2"
	"testing"

	"github.com/payflow/payflow/payment"
)

func TestSplit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for total := int64(1); total < 50; total++ {
		for n := 1; int64(n) <= min(total, 4); n++ {
			var sum int64
			parts := split(rng, total, n)
			for _, p := range parts {
				if p <= 0 {
					t.Fatalf("split(%d, %d) = %v: a part is not positive", total, n, parts)
				}
				sum += p
			}
			if len(parts) != n || sum != total {
				t.Fatalf("split(%d, %d) = %v", total, n, parts)
			}
		}
	}
}

// The refunds a run plans always fit within what was paid, whatever order
// they are asked in and whichever end CLOSED or FAILED: a 409 for one of
// them is the service's fault, never the plan's. Full scripts add up to
// what was paid; their numbers are valid and unique.
func TestRefundScriptsFitWhatWasPaid(t *testing.T) {
	rc := refundConfig{frac: 0.8, portal: 0.3, repeat: 0.3, exceed: 0.3, extra: 0.5, dropped: 0.1, abnormal: 0.1,
		sysErr: 0.1, notEnough: 0.1, notEnoughTimes: 2}
	for seed := uint64(1); seed <= 20; seed++ {
		plans := makePlans(rand.New(rand.NewPCG(seed, 1)), 300, "t", 0.3, 0.1, 6)
		makeRefundScripts(rand.New(rand.NewPCG(seed, 3)), plans, "t", rc)
		seen := map[string]bool{}
		kinds := map[refundKind]int{}
		reviews := 0
		for _, p := range plans {
			if p.Review != "" {
				reviews++
				if p.Refunds == nil || !p.Refunds.Full || len(p.Refunds.Steps) != 1 || p.Refunds.Steps[0].AmountFen != p.PaidFen {
					t.Fatalf("an arranged REVIEW is not settled by one full refund: %+v", p.Refunds)
				}
				if p.Review == reviewMismatch && p.PaidFen == p.AmountFen {
					t.Fatalf("an amount mismatch paid the order's amount: %+v", p)
				}
			}
			s := p.Refunds
			if s == nil {
				continue
			}
			if s.PaidFen != p.PaidFen {
				t.Fatalf("script paid %d, plan %d", s.PaidFen, p.PaidFen)
			}
			var all, succeeding int64
			portals := 0
			for _, st := range s.Steps {
				kinds[st.Kind]++
				if st.AmountFen <= 0 || !payment.ValidOutRefundNo(st.No) || seen[st.No] {
					t.Fatalf("step %+v: bad amount or number", st)
				}
				seen[st.No] = true
				all += st.AmountFen
				if st.Kind.want() == payment.RefundSuccess {
					succeeding += st.AmountFen
				}
				if st.Kind == refundPortal {
					portals++
					if st.Repeat || st.options() != nil {
						t.Fatalf("a portal refund with API switches: %+v", st)
					}
				}
				if (st.Kind == refundNotEnough) != (st.NotEnough > 0) {
					t.Fatalf("step %+v: NOT_ENOUGH count", st)
				}
			}
			if all > s.PaidFen || portals > 1 || s.Full != (succeeding == s.PaidFen) {
				t.Fatalf("script of %d fen: asks %d, %d succeed, full %v, %d portal refunds", s.PaidFen, all, succeeding, s.Full, portals)
			}
			if s.ExceedNo != "" && (!payment.ValidOutRefundNo(s.ExceedNo) || seen[s.ExceedNo]) {
				t.Fatalf("bad exceed number %q", s.ExceedNo)
			}
		}
		if reviews != 6 {
			t.Fatalf("%d REVIEWs arranged, want 6", reviews)
		}
		for _, k := range refundKinds {
			if kinds[k] == 0 {
				t.Fatalf("seed %d: no %s refund in 300 orders: %v", seed, k, kinds)
			}
		}
	}
}
