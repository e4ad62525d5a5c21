// Package deploy holds the deployment files (docker-compose.yml and the
// Dockerfile at the repository root, and under deploy/: the Grafana
// dashboard, Prometheus configuration and alerting rules, the nginx proxy
// and the Temporal one-shot scripts) and the tests that keep them in step
// with the code and the external contract. It has no runtime code.
package deploy
