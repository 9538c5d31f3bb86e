// Package faults is profiled's fault suite: the built binary, a real Kafka
// broker and real Redis servers that the suite owns, so that it can kill,
// pause, slow down and restart them at random moments while a seeded stream
// of 200,000 records is consumed. A reference model written from the
// contract alone (it never calls the product's decoding or merge code) says
// what every profile and the dead-letter topic must hold afterwards, so the
// two can disagree.
//
// The tests run only when PROFILED_FAULTS=1 (make test-faults sets it) and
// skip otherwise and under -short. They start their own broker with
// deploy/kafka.sh (KAFKA_PORT 39092 unless PROFILED_FAULTS_KAFKA_PORT says
// otherwise) and their own redis-server processes (from port 36379), and
// stop everything they started, also when a test fails.
//
// Each scenario prints one line; the suite's last line is
//
//	faults: <n> scenarios, <m> events, <lost> lost, <dup> double-counted
//
// The cluster suite (cluster_*_test.go, PROFILED_CLUSTER=1, make
// test-cluster) runs the same stream, model and checks against a real Redis
// Cluster and a Sentinel set-up, on ports of its own; its last line starts
// with "cluster:".
package faults
