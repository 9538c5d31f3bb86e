// Package deploy holds no code: it is the home of the tests that check the
// deployment files beside it (the Helm chart, the compose quick start, the
// Dockerfile, the dashboard and the alert rules) against the real profiled,
// so that settings, probes and metric names cannot drift apart. Run them
// with `make deploy-check`.
package deploy
