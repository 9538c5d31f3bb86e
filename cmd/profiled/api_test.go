package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/sink"
)

const testToken = "0123456789abcdef-api-token"

func TestConfigAPIOffByDefault(t *testing.T) {
	c, err := loadConfig(nil, envOf(minimal()), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIAddr != "" || c.APIToken != "" {
		t.Errorf("api addr %q, token set %v: the read API must be off by default", c.APIAddr, c.APIToken != "")
	}
}

func TestConfigAPIRefusesToStartWithoutAToken(t *testing.T) {
	cases := []struct {
		name  string
		env   map[string]string
		names string
	}{
		{"address without token", minimal("PROFILED_API_ADDR", "127.0.0.1:8081"), "PROFILED_API_TOKEN"},
		{"blank token", minimal("PROFILED_API_ADDR", ":8081", "PROFILED_API_TOKEN", "   "), "PROFILED_API_TOKEN"},
		{"short token", minimal("PROFILED_API_ADDR", ":8081", "PROFILED_API_TOKEN", "changeme"), "PROFILED_API_TOKEN"},
		{"same address as metrics", minimal("PROFILED_API_ADDR", ":8080", "PROFILED_API_TOKEN", testToken), "PROFILED_API_ADDR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(nil, envOf(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.names) {
				t.Fatalf("error %v, want one naming %s", err, tc.names)
			}
			if strings.Contains(err.Error(), "changeme") {
				t.Errorf("the error repeats the token: %v", err)
			}
		})
	}
}

func TestConfigAPISettings(t *testing.T) {
	env := minimal("PROFILED_API_ADDR", "10.0.0.5:8081", "PROFILED_API_TOKEN", testToken+"\n")
	c, err := loadConfig(nil, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIAddr != "10.0.0.5:8081" || c.APIToken != testToken {
		t.Errorf("addr %q, token %q: want the address, and the token without the Secret's newline", c.APIAddr, c.APIToken)
	}
	c, err = loadConfig([]string{"--api-addr=127.0.0.1:9000", "--api-token", testToken + "x"}, envOf(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.APIAddr != "127.0.0.1:9000" || c.APIToken != testToken+"x" {
		t.Errorf("flags do not win: addr %q", c.APIAddr)
	}
	red := c.redacted()
	if red["api-token"] != "REDACTED" || red["api-addr"] != "127.0.0.1:9000" {
		t.Errorf("redacted api-token %q, api-addr %q", red["api-token"], red["api-addr"])
	}
}

// TestStartAPI serves the read API from a Redis, as run does, and stops it.
func TestStartAPI(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.HSet("p:profile:{u/1}", "email", "x@y.io", "app_launches", "1", "web_visits", "0")
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	addr := testenv.FreeAddr(t)
	var logs testenv.Buffer
	stop, err := startAPI(&config{APIAddr: addr, APIToken: testToken, Sink: sink.Config{KeyPrefix: "p:"}, Redis: redisSettings{Timeout: time.Second}}, rdb, zerolog.New(&logs))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, tok string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, tok string
		want      int
	}{
		{"/v1/profiles/u%2F1", testToken, 200},
		{"/profiles/u%2F1", testToken, 200},
		{"/v1/profiles/u%2F1", "", 401},
		{"/v1/profiles/u%2F2", testToken, 404},
	} {
		if got := get(c.path, c.tok); got != c.want {
			t.Errorf("GET %s: %d, want %d", c.path, got, c.want)
		}
	}
	stop()
	if got := get("/v1/profiles/u%2F1", testToken); got != 0 {
		t.Errorf("after stop: status %d, want a refused connection", got)
	}
	if strings.Contains(logs.String(), "x@y.io") || strings.Contains(logs.String(), testToken) {
		t.Errorf("logs carry a personal value or the token:\n%s", logs.String())
	}

	// off: nothing listens, stop is harmless
	stop, err = startAPI(&config{}, rdb, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	stop()
}
