package profile

import (
	"testing"
	"time"
)

// A launch as the benchmark workload sends it: identity, time, location,
// timezone. BenchmarkDecode guards the decoder's cost per record, which
// bounds profiled's throughput on a small machine.
var benchLaunch = []byte(`{"userId":"u4821","anonymousId":"d4821","messageId":"m-1-123456","timestamp":"2026-11-28T09:15:02.123Z","type":"track","event":"Application Opened","context":{"location":{"city":"Pune","country":"X","latitude":18.5,"longitude":73.8},"timezone":"Asia/Kolkata"}}`)

var benchIdentify = []byte(`{"userId":"u4821","messageId":"m-1-123457","timestamp":"2026-11-28T09:15:02.123Z","type":"identify","traits":{"email":"user4821@example.com","phone":"+919800004821","birthday":"1971-06-10","customerType":"Gold","plan":"annual","score":412}}`)

func BenchmarkDecode(b *testing.B) {
	d, err := NewDecoder(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		v    []byte
	}{{"launch", benchLaunch}, {"identify", benchIdentify}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := d.Decode(c.v, now, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
