package kafka

import (
	"errors"

	"github.com/segmentio/kafka-go"
)

// IsTemporary tells whether a kafka-go error is worth retrying: a Kafka
// error code that the protocol calls retriable, write errors that are all
// retriable, and anything else (EOF, a reset or refused connection, a
// timeout), which is the network's and passes.
func IsTemporary(err error) bool {
	if err == nil {
		return false
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && !IsTemporary(e) {
				return false
			}
		}
		return true
	}
	return true
}
