package main

import (
	"fmt"
	"slices"
	"time"
)

// latencies summarises a set of durations.
type latencies struct {
	N             int
	P50, P99, Max time.Duration
}

func summarize(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return latencies{N: len(s), P50: quantile(s, 0.50), P99: quantile(s, 0.99), Max: s[len(s)-1]}
}

// quantile is the nearest-rank quantile of sorted s.
func quantile(s []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// ms renders a duration in milliseconds, with one decimal below 10 ms.
func ms(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

// perSec renders a rate.
func perSec(n int, d time.Duration) string {
	if n == 0 || d <= 0 {
		return "0/s"
	}
	return fmt.Sprintf("%.1f/s", float64(n)/d.Seconds())
}
