// Package profile holds the pure rules of profiled: decoding a Kafka record
// value into an Event, classifying it, resolving the profile id, choosing the
// event time, validating and normalising every profile field, and the merge
// that folds events into an Update.
//
// The package has no I/O: it imports no Kafka, Redis, logging or metrics
// package, so every rule of the contract can be tested as a plain function.
// The Redis sink applies the same merge rules server-side; the merge laws
// (commutative, associative, idempotent) are proven here and the agreement
// between the two is proven by the integration tests.
package profile
