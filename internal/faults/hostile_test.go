package faults_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/profiled/profiled/profile"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Unit tests of the hostile part of the stream, the model's id rules and
// the dead-letter checks. They need no services and run under -short.

// TestRawIDRules: an id is usable only when its bytes are valid UTF-8 as
// sent; it is never repaired, so two byte strings a repairing reader makes
// one are no id at all, and the one sent as it is stays its own.
func TestRawIDRules(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"\xff\xfeuser", "", false},
		{"\xfe\xffuser", "", false},
		{"\uFFFD\uFFFDuser", "\uFFFD\uFFFDuser", true}, // U+FFFD sent as it is
		{"\x80user", "", false},
		{"user\xc0\xaf", "", false},             // overlong
		{"user\xed\xa0\x80", "", false},         // a surrogate as UTF-8
		{"user\xe2\x82", "", false},             // cut short
		{"user\xf8\x88\x80\x80\x80", "", false}, // five bytes
		{" Zo\u00eb-\u674e-\u20ac ", "Zo\u00eb-\u674e-\u20ac", true},
		{"", "", false},
		{"  ", "", false},
		{"a{b", "", false},
		{"bell\x07", "", false},
		{"c\u0085d", "", false}, // a C1 control
		{strings.Repeat("\u00e9", 128), strings.Repeat("\u00e9", 128), true}, // 256 bytes
		{strings.Repeat("\u00e9", 128) + "x", "", false},
	} {
		got, ok := rawID(tc.raw)
		if got != tc.want || ok != tc.ok {
			t.Errorf("rawID(%q) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

// TestReadIDs: a record needs one usable id (an alias both); an id that is
// not UTF-8 beside a usable one is simply absent.
func TestReadIDs(t *testing.T) {
	for _, tc := range []struct {
		user, anon   string
		alias        bool
		wantU, wantA string
		ok           bool
	}{
		{"\xff\xfeh-1", "", false, "", "", false},
		{"\xff\xfeh-1", "\xfe\xffh-1", false, "", "", false},
		{"u-1", "d-\xc0\xaf", false, "u-1", "", true},
		{"u-\xe2\x82", "a-7", false, "", "a-7", true},
		{"anon:a-7", "", false, "", "", false},
		{"u-1", "a-\xff", true, "u-1", "", false},
		{"u-\xff", "a-7", true, "", "a-7", false},
		{"u-1", "a-7", true, "u-1", "a-7", true},
	} {
		u, a, ok := readIDs(tc.user, tc.anon, tc.alias)
		if u != tc.wantU || a != tc.wantA || ok != tc.ok {
			t.Errorf("readIDs(%q, %q, alias %v) = %q, %q, %v; want %q, %q, %v", tc.user, tc.anon, tc.alias, u, a, ok, tc.wantU, tc.wantA, tc.ok)
		}
	}
	if got := readMessageID("\xffm-1"); got != "" {
		t.Errorf("readMessageID of bytes that are not UTF-8 = %q, want absent", got)
	}
}

// TestHostileRecordsInStream: a stream holds records whose ids are not
// UTF-8 (dead-lettered, or applied by their other id), the triples that a
// repairing reader would merge, messageIds that are not UTF-8, forged
// headers on rejected and other records, and two records exactly at the
// broker's size limit; their JSON is well-formed apart from the bytes.
func TestHostileRecordsInStream(t *testing.T) {
	st := generate(5, 60000, testNow)
	if err := regular(st.recs); err != nil {
		t.Fatal(err)
	}
	var deadRaw, appliedRaw, forgedDead, forgedOther, noMsgTwice int
	var limits []*rec
	for _, r := range st.recs {
		if r.dup {
			continue
		}
		if r.atLimit {
			limits = append(limits, r)
			continue
		}
		if len(r.headers) > 0 {
			if r.out == dead {
				forgedDead++
			} else {
				forgedOther++
			}
		}
		if r.value == nil || utf8.Valid(r.value) || r.reason == profile.ReasonInvalidJSON {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(r.value, &m); err != nil { // encoding/json replaces the bytes; the JSON is fine
			t.Fatalf("seq %d: %v: %q", r.seq, err, r.value)
		}
		switch r.out {
		case dead:
			deadRaw++
			if r.reason != profile.ReasonMissingIdentity {
				t.Errorf("seq %d: an id that is not UTF-8 rejected as %s: %q", r.seq, r.reason, r.value)
			}
		case applied:
			appliedRaw++
			if r.ev.msgID == "" && strings.Contains(string(r.value), "\xffm-") {
				noMsgTwice++
			}
			if !utf8.ValidString(r.ev.id) || !utf8.ValidString(r.ev.anon) {
				t.Errorf("seq %d: the model made a profile id of bytes that are not UTF-8: %q", r.seq, r.ev.id)
			}
		}
	}
	t.Logf("%d dead and %d applied records with bytes that are not UTF-8 (%d with such a messageId); forged headers on %d rejected, %d other records",
		deadRaw, appliedRaw, noMsgTwice, forgedDead, forgedOther)
	if deadRaw < 10 || appliedRaw < 5 || noMsgTwice < 2 || forgedDead < 3 || forgedOther < 3 {
		t.Error("too few hostile records")
	}

	// the id a repairing reader would make of "\xff\xfe"+x and "\xfe\xff"+x,
	// sent as it is: its profile counts that one event (a producer
	// duplicate of it carries the same messageId)
	want, _ := model(st.recs)
	triples := 0
	for id, w := range want {
		if strings.Contains(id, "\uFFFD\uFFFDh-") {
			triples++
			if n := w.launches + w.visits; n > 1 {
				t.Errorf("profile %q: %d launches and visits in the model, want at most 1", id, n)
			}
		}
	}
	if triples == 0 {
		t.Error("no id sent as U+FFFD U+FFFD beside the two byte strings a repairing reader makes it")
	}

	if len(limits) != 2 {
		t.Fatalf("%d records at the size limit, want 2", len(limits))
	}
	for i, r := range limits {
		hs := append([]header{{seqHeader, strconv.Itoa(r.seq)}}, r.headers...)
		if n := batchBytes(r.key, r.value, hs); n != brokerMaxMessageBytes {
			t.Errorf("record at the limit seq %d: batch of %d bytes, want %d", r.seq, n, brokerMaxMessageBytes)
		}
		if r.out != dead || r.reason != profile.ReasonTooLarge || len(r.value) <= 32<<10 || !json.Valid(r.value) {
			t.Errorf("record at the limit seq %d: %v %s, %d bytes", r.seq, r.out, r.reason, len(r.value))
		}
		if (i == 0) != (len(r.headers) > 0) {
			t.Errorf("record at the limit seq %d: forged headers %v", r.seq, r.headers)
		}
	}
}

// TestBatchBytes: the size the generator gives a record batch is the size
// of the batch Kafka's message format v2 encodes (franz-go's kmsg
// encoder), also where a length needs a longer varint.
func TestBatchBytes(t *testing.T) {
	for _, n := range []int{0, 63, 64, 8191, 8192, 1 << 20, brokerMaxMessageBytes} {
		key, value := []byte("k-1"), make([]byte, n)
		hs := []header{{seqHeader, "12345"}, {"profiled.source.offset", "7"}}
		r := kmsg.Record{Key: key, Value: value}
		for _, h := range hs {
			r.Headers = append(r.Headers, kmsg.Header{Key: h.key, Value: []byte(h.value)})
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the body: all but the one-byte varint 0
		b := kmsg.RecordBatch{Magic: 2, NumRecords: 1, Records: r.AppendTo(nil)}
		if got, want := batchBytes(key, value, hs), len(b.AppendTo(nil)); got != want {
			t.Errorf("value of %d bytes: batchBytes %d, encoded %d", n, got, want)
		}
	}
}

// TestLetterChecks: dead letters are matched by profiled's own source
// headers, never by forged ones; a forged header left unrenamed, a lost
// header, a changed value and wrong drop markers are reported.
func TestLetterChecks(t *testing.T) {
	r := &rec{seq: 42, key: []byte("k"), value: []byte(`{"type":"page"}`), out: dead, reason: profile.ReasonInvalidJSON,
		headers: []header{{"profiled.source.offset", "3"}, {"profiled.source.partition", "0"}, {"x-trace", "t"}, {"profiled.original.a", "b"}}}
	own := func(extra ...kgo.RecordHeader) []kgo.RecordHeader {
		return append([]kgo.RecordHeader{
			{Key: hReason, Value: []byte(profile.ReasonInvalidJSON)}, {Key: hDetail, Value: []byte("value is blank")},
			{Key: hTopic, Value: []byte("in")}, {Key: hPartition, Value: []byte("5")}, {Key: hOffset, Value: []byte("900")},
			{Key: hFailedAt, Value: []byte(testNow.Format(time.RFC3339Nano))}}, extra...)
	}
	renamed := []kgo.RecordHeader{{Key: seqHeader, Value: []byte("42")}, {Key: "profiled.original.source.offset", Value: []byte("3")},
		{Key: "profiled.original.source.partition", Value: []byte("0")}, {Key: "x-trace", Value: []byte("t")},
		{Key: "profiled.original.original.a", Value: []byte("b")}}
	asSent := []kgo.RecordHeader{{Key: seqHeader, Value: []byte("42")}, {Key: "profiled.source.offset", Value: []byte("3")},
		{Key: "profiled.source.partition", Value: []byte("0")}, {Key: "x-trace", Value: []byte("t")}, {Key: "profiled.original.a", Value: []byte("b")}}
	cat := func(a, b []kgo.RecordHeader) []kgo.RecordHeader {
		return append(append([]kgo.RecordHeader{}, a...), b...)
	}
	for _, tc := range []struct {
		name string
		d    *kgo.Record
		want string // a problem letterProblems must report; "" for none
	}{
		{"as the contract says", &kgo.Record{Key: r.key, Value: r.value, Headers: cat(renamed, own())}, ""},
		{"forged headers not renamed", &kgo.Record{Key: r.key, Value: r.value, Headers: cat(asSent, own())}, "not renamed"},
		{"seq header lost", &kgo.Record{Key: r.key, Value: r.value, Headers: cat(renamed[1:], own())}, "producer headers"},
		{"value changed", &kgo.Record{Key: r.key, Value: []byte("{}"), Headers: cat(renamed, own())}, "value changed"},
		{"no reason", &kgo.Record{Key: r.key, Value: r.value, Headers: cat(renamed, own()[1:])}, "no header " + hReason},
		{"value dropped", &kgo.Record{Key: r.key, Headers: cat(renamed, own(kgo.RecordHeader{Key: hValueDropped, Value: []byte("15")}))}, ""},
		{"value dropped, wrong size", &kgo.Record{Key: r.key, Headers: cat(renamed, own(kgo.RecordHeader{Key: hValueDropped, Value: []byte("14")}))}, "the value was 15 bytes"},
		{"value dropped but sent", &kgo.Record{Key: r.key, Value: r.value, Headers: cat(renamed, own(kgo.RecordHeader{Key: hValueDropped, Value: []byte("15")}))}, "but 15 bytes sent"},
		{"key and headers dropped", &kgo.Record{Headers: own(kgo.RecordHeader{Key: hValueDropped, Value: []byte("15")},
			kgo.RecordHeader{Key: hKeyHeadersDropped, Value: []byte(strconv.Itoa(1 + 9 + 2 + 22 + 1 + 25 + 1 + 7 + 1 + 19 + 1))})}, ""},
		{"key and headers dropped but sent", &kgo.Record{Key: r.key, Headers: cat(renamed, own(kgo.RecordHeader{Key: hValueDropped, Value: []byte("15")},
			kgo.RecordHeader{Key: hKeyHeadersDropped, Value: []byte("88")}))}, "dropped but sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic, p, o, err := letterSource(tc.d)
			if err == nil && (topic != "in" || p != 5 || o != 900) {
				t.Errorf("source %s/%d/%d, want profiled's own in/5/900", topic, p, o)
			}
			why := strings.Join(letterProblems(tc.d, r), "; ")
			switch {
			case tc.want == "" && why != "":
				t.Errorf("problems reported: %s", why)
			case tc.want != "" && !strings.Contains(why, tc.want):
				t.Errorf("problems %q, want one saying %q", why, tc.want)
			}
		})
	}
	// a reader that takes the first header of a name is fooled by the
	// forged one when profiled does not rename it; the suite's is not
	d := &kgo.Record{Headers: cat(asSent, own())}
	for _, h := range d.Headers {
		if h.Key == hOffset {
			if string(h.Value) != "3" {
				t.Fatal("the forged header should come first in this letter")
			}
			break
		}
	}
	if _, _, o, _ := letterSource(d); o != 900 {
		t.Errorf("letterSource read offset %d, want profiled's own 900", o)
	}
}
