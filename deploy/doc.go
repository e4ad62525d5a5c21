// Package deploy holds the deployment files (docker-compose.yml and the
// Dockerfile at the repository root, and under deploy/: the Grafana
// dashboard, Prometheus configuration and alerting rules, the nginx proxy
// with its TLS template, the Temporal one-shot scripts) and the tests that
// keep them in step with the code and the interface (docs/interface.md): among them,
// that the public proxy routes only WeChat Pay's notifications (run on a
// real nginx) and that the order API stays on the internal network. It has
// no runtime code.
package deploy
