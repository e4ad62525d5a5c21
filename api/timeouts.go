package api

import "time"

// The order API's time limits, each derived from the one inside it, so a
// request always ends with an answer of ours: a client never gets a proxy's
// 504, or a connection cut by the server's WriteTimeout, for an order that
// was in fact created. From the inside out:
const (
	// UpdateTimeout bounds a request's wait for the order's workflow
	// (prepay at WeChat, close at WeChat) through a Temporal update. When
	// it passes, the api answers 503 saying the order exists and how to see
	// it; the workflow finishes the work anyway.
	UpdateTimeout = 12 * time.Second
	// RequestTimeout bounds everything a request of the order API does:
	// read and write PostgreSQL, start the workflow, wait for the update.
	// It leaves 3 s for what comes before the update and for the answer.
	RequestTimeout = UpdateTimeout + 3*time.Second
	// WriteTimeout is bin/api's http.Server WriteTimeout: it must outlast
	// RequestTimeout, so the answer is written before the server would
	// close the connection.
	WriteTimeout = RequestTimeout + 5*time.Second
	// A proxy in front of bin/api must wait longer still: nginx's
	// proxy_read_timeout in deploy/nginx/nginx.conf is 25 s (checked by
	// the deploy tests).
)
