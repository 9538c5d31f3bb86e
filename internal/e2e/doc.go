// Package e2e holds the end-to-end tests of profiled: the built binary
// against a real Kafka broker and a real Redis. They run when
// PROFILED_TEST_KAFKA_BROKERS and PROFILED_TEST_REDIS_URL are set (make test
// sets them) and skip otherwise and under -short.
package e2e
