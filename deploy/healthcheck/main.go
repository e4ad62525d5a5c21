// Command healthcheck is the containers' health probe: the runtime image is
// distroless (no shell, no curl), so compose's healthcheck runs this static
// binary instead. It GETs each URL given and exits 0 only if every one
// answers 2xx within the timeout:
//
//	healthcheck http://127.0.0.1:8080/readyz
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

const timeout = 3 * time.Second

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: healthcheck URL...")
		os.Exit(2)
	}
	for _, u := range os.Args[1:] {
		if err := probe(context.Background(), u, timeout); err != nil {
			fmt.Fprintln(os.Stderr, "healthcheck:", err)
			os.Exit(1)
		}
	}
}

// probe GETs url and reports an error unless it answers 2xx within d.
func probe(ctx context.Context, url string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	// A probe of our own listener must not go through an HTTP proxy from
	// the environment.
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
