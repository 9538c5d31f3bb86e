package kafka

import (
	"strings"

	kafkasasl "github.com/segmentio/kafka-go/sasl"
	kplain "github.com/segmentio/kafka-go/sasl/plain"
	kscram "github.com/segmentio/kafka-go/sasl/scram"
	"github.com/twmb/franz-go/pkg/sasl"
	fplain "github.com/twmb/franz-go/pkg/sasl/plain"
	fscram "github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// saslClients is one mechanism as each client library spells it.
type saslClients struct {
	kafkaGo func(user, pass string) (kafkasasl.Mechanism, error)
	franz   func(user, pass string) sasl.Mechanism
}

// saslMechanisms is the one place a mechanism name becomes a client's
// mechanism: Validate accepts exactly these names, and both clients are
// built from the same entry.
var saslMechanisms = map[string]saslClients{
	SASLPlain: {
		kafkaGo: func(u, p string) (kafkasasl.Mechanism, error) { return kplain.Mechanism{Username: u, Password: p}, nil },
		franz:   func(u, p string) sasl.Mechanism { return fplain.Auth{User: u, Pass: p}.AsMechanism() },
	},
	SASLSCRAMSHA256: {
		kafkaGo: func(u, p string) (kafkasasl.Mechanism, error) { return kscram.Mechanism(kscram.SHA256, u, p) },
		franz:   func(u, p string) sasl.Mechanism { return fscram.Auth{User: u, Pass: p}.AsSha256Mechanism() },
	},
	SASLSCRAMSHA512: {
		kafkaGo: func(u, p string) (kafkasasl.Mechanism, error) { return kscram.Mechanism(kscram.SHA512, u, p) },
		franz:   func(u, p string) sasl.Mechanism { return fscram.Auth{User: u, Pass: p}.AsSha512Mechanism() },
	},
}

// lookupSASL finds a mechanism by name, in any case.
func lookupSASL(name string) (saslClients, bool) {
	m, ok := saslMechanisms[strings.ToUpper(name)]
	return m, ok
}
