package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"

	kafkaconn "github.com/profiled/profiled/internal/kafka"
	"github.com/profiled/profiled/internal/testenv"
)

// printedProfile returns the fields of one profile block of the report:
//
//	profile:{u-1001}
//	  email                Priya.Sharma@example.com
func printedProfile(out, key string) map[string]string {
	fields := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	in := false
	for sc.Scan() {
		line := sc.Text()
		if line == key {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "  ") {
			break
		}
		name, value, _ := strings.Cut(strings.TrimSpace(line), " ")
		fields[name] = strings.TrimSpace(value)
	}
	return fields
}

func TestEmbeddedQuickStartEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an in-process broker and Redis")
	}
	addr := testenv.FreeAddr(t)
	env := map[string]string{
		"PROFILED_EMBEDDED":             "true",
		"PROFILED_EMBEDDED_SAMPLE":      "../../testdata/sample-events.jsonl",
		"PROFILED_HTTP_ADDR":            addr,
		"PROFILED_DEFAULT_PHONE_REGION": "IN",
		"PROFILED_LOG_FORMAT":           "json",
		"PROFILED_BATCH_TIME":           "20ms",
	}
	var stdout, stderr testenv.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envOf(env), &stdout, &stderr) }()

	defer func() {
		if t.Failed() {
			t.Logf("output:\n%s", stdout.String())
		}
	}()
	testenv.Eventually(t, 90*time.Second, "the sample report", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned %v while waiting for the sample report", err)
		default:
		}
		s := stdout.String()
		// the report's last line follows every profile block
		return strings.Contains(s, "profiles built from the sample events") && strings.Contains(s, "profiled keeps running")
	})
	out := stdout.String()

	u := printedProfile(out, "profile:{u-1001}")
	want := map[string]string{
		// the anonymous visit before sign-up (a-7f3c, linked by m-001)
		"first_seen":   "2026-11-15T06:30:00.000Z",
		"last_seen":    "2026-11-27T21:05:44.500Z",
		"app_launches": "3", // m-002 twice counts once, plus m-004, plus the second device's m-005
		"web_visits":   "3", // m-000, m-000b as a-7f3c, m-003
		"phone":        "+919876543210",
		"email":        "Priya.Sharma@example.com",
		"customer_id":  "u-1001",
	}
	for k, v := range want {
		if u[k] != v {
			t.Errorf("u-1001 %s = %q, want %q", k, u[k], v)
		}
	}
	for _, anon := range []string{"profile:{anon:a-7f3c}", "profile:{anon:d-55aa}"} {
		if strings.Contains(out, "\n"+anon+"\n") {
			t.Errorf("%s printed: its history is in u-1001's profile", anon)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}

	// the log: JSON lines, the effective configuration, and no personal values
	sawConfig := false
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line is not JSON: %q", line)
			continue
		}
		if m["message"] == "starting with this configuration" {
			sawConfig = true
			if m["embedded"] != "true" || m["http-addr"] != addr {
				t.Errorf("configuration log line: %s", line)
			}
		}
		for _, personal := range []string{"Priya", "98765", "sam@shop", "1992-03-14"} {
			if strings.Contains(line, personal) {
				t.Errorf("log line carries a personal value %q: %s", personal, line)
			}
		}
	}
	if !sawConfig {
		t.Error("the effective configuration was not logged")
	}

	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "profiled_build_info") {
		t.Errorf("/metrics: %d, profiled_build_info missing:\n%.2000s", resp.StatusCode, body)
	}
	for _, path := range []string{"/livez", "/readyz"} {
		resp, err := c.Get("http://" + addr + path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d, want 200", path, resp.StatusCode)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run after cancel = %v, want nil; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("run did not return within 10s of the cancel; output:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "stopped cleanly") {
		t.Errorf("no \"stopped cleanly\" in the log")
	}
}

// Refusals only a setting can fix stop the start naming the setting; all
// else is an outage, waited for.
func TestRedisRefusalsNameTheSetting(t *testing.T) {
	url := redisSettings{URL: "redis://u:pw@r:6379/3"}
	cluster := redisSettings{ClusterAddrs: []string{"c:7000"}, Password: "pw"}
	cases := []struct {
		r    redisSettings
		err  string
		want string // "" for an outage
	}{
		{url, "WRONGPASS invalid username-password pair or user is disabled.", "PROFILED_REDIS_URL"},
		{url, "NOAUTH Authentication required.", "PROFILED_REDIS_URL"},
		{url, "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?", "PROFILED_REDIS_URL"},
		{url, "ERR DB index is out of range", "PROFILED_REDIS_URL"},
		{url, "NOPERM this user has no permissions to run the 'evalsha' command", "PROFILED_REDIS_URL"},
		{cluster, "WRONGPASS invalid username-password pair or user is disabled.", "PROFILED_REDIS_PASSWORD"},
		{url, "dial tcp 127.0.0.1:6379: connect: connection refused", ""},
		{url, "LOADING Redis is loading the dataset in memory", ""},
		{url, "i/o timeout", ""},
	}
	for _, tc := range cases {
		testenv.WantError(t, tc.err, tc.r.settingError(errors.New(tc.err)), tc.want) // "" for an outage, waited for
	}
}

func TestKafkaRefusalsNameTheSetting(t *testing.T) {
	cases := []struct {
		err  error
		want string // "" for an outage
	}{
		{fmt.Errorf("input topics: x: %w", kafkaconn.ErrUnknownTopic), "PROFILED_KAFKA_TOPICS"},
		{fmt.Errorf("session timeout 45m0s: %w", kafka.InvalidSessionTimeout), "PROFILED_KAFKA_SESSION_TIMEOUT"},
		{fmt.Errorf("metadata: %w", kerr.SaslAuthenticationFailed), "PROFILED_KAFKA_SASL_MECHANISM"},
		{fmt.Errorf("metadata: %w", x509.UnknownAuthorityError{}), "PROFILED_KAFKA_TLS_CA_FILE"},
		{fmt.Errorf("metadata: %w", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), "PROFILED_KAFKA_TLS"},
		{fmt.Errorf("metadata: %w", kerr.TopicAuthorizationFailed), "kafka refused"},
		{fmt.Errorf("metadata: %w", kerr.NotLeaderForPartition), ""},
		{fmt.Errorf("metadata: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), ""},
		{fmt.Errorf("metadata: %w", context.DeadlineExceeded), ""},
	}
	for _, tc := range cases {
		testenv.WantError(t, tc.err, kafkaSettingError(tc.err), tc.want) // "" for an outage, waited for
	}
}
