package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// withProfile returns a getenv for a Redis holding one profile, as the
// pipeline stores it, under prefix "t:".
func withProfile(t *testing.T) func(string) string {
	t.Helper()
	mr := miniredis.RunT(t)
	mr.HSet("t:profile:{u-1001}",
		"customer_id", "u-1001", "email", "Priya.Sharma@example.com", "phone", "+919876543210",
		"birthday", "1992-03-14", "city", "Pune", "country", "India", "timezone", "Asia/Kolkata",
		"first_seen", "2026-11-19T13:10:00.000Z", "first_seen_channel", "web",
		"app_launches", "2", "web_visits", "1", "trait.plan", "annual")
	env := map[string]string{"PROFILED_REDIS_URL": "redis://" + mr.Addr() + "/0", "PROFILED_REDIS_KEY_PREFIX": "t:"}
	return func(k string) string { return env[k] }
}

func TestGetPrintsTheCard(t *testing.T) {
	getenv := withProfile(t)
	var out bytes.Buffer
	if err := run(t.Context(), []string{"get", "u-1001"}, getenv, nil, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Profile u-1001\n",
		"  Location            Pune, India\n",
		"  Email               Priya.Sharma@example.com\n",
		"  Phone               +91 98765 43210 (IN)\n",
		"  Initially acquired  Nov 19, 2026 18:40 Asia/Kolkata, via web\n",
		"  Last session        not set\n",
		"  Birthday            Mar 14, 1992\n",
		"  Customer Type       not set\n",
		"  Age                 ", " years ",
		"Custom traits\n  plan  annual\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestGetJSON(t *testing.T) {
	getenv := withProfile(t)
	for _, args := range [][]string{{"get", "--json", "u-1001"}, {"get", "u-1001", "--json"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, getenv, nil, &out); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		var got map[string]any
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v: not JSON: %v\n%s", args, err, out.String())
		}
		age, _ := got["age"].(map[string]any)
		if got["email"] != "Priya.Sharma@example.com" || got["trait.plan"] != "annual" || got["app_launches"] != 2.0 ||
			age["years"] == nil || age["months"] == nil {
			t.Errorf("%v: %v", args, got)
		}
		if _, ok := got["customer_type"]; ok {
			t.Errorf("%v: an absent field is in the JSON: %v", args, got)
		}
	}
}

func TestGetUnknownID(t *testing.T) {
	getenv := withProfile(t)
	err := run(t.Context(), []string{"get", "nobody"}, getenv, nil, &bytes.Buffer{})
	if !errors.Is(err, errNotFound) || err.Error() != "profile not found: nobody" {
		t.Fatalf("error %v, want \"profile not found: nobody\"", err)
	}
	// the prefix is part of where profiles live
	err = run(t.Context(), []string{"get", "--prefix", "other:", "u-1001"}, getenv, nil, &bytes.Buffer{})
	if !errors.Is(err, errNotFound) {
		t.Fatalf("under another prefix: %v, want not found", err)
	}
}

// TestGetImpossibleID proves get applies the decoder's id rules: an id
// that is not valid UTF-8 (never written: the decoder refuses it rather
// than repair it) is not found, even where a hash exists under its bytes,
// and the message quotes it and says why.
func TestGetImpossibleID(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.HSet("profile:{\xff\xfeuser}", "web_visits", "1")
	mr.HSet("profile:{\ufffd\ufffduser}", "web_visits", "2")
	getenv := func(k string) string {
		return map[string]string{"PROFILED_REDIS_URL": "redis://" + mr.Addr() + "/0"}[k]
	}
	tests := []struct{ id, want string }{
		{"\xff\xfeuser", `profile not found: "\xff\xfeuser" cannot be a profile id: not valid UTF-8`},
		{"anon:\xfe\xff", `profile not found: "anon:\xfe\xff" cannot be a profile id: not valid UTF-8`},
		{"{u}", `profile not found: "{u}" cannot be a profile id: holds a brace or a control character`},
		{"a\x1b[2Jb", `profile not found: "a\x1b[2Jb" cannot be a profile id: holds a brace or a control character`},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := run(t.Context(), []string{"get", tc.id}, getenv, nil, &out)
		if !errors.Is(err, errNotFound) || err.Error() != tc.want {
			t.Errorf("get %q: %v\nwant %s", tc.id, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("get %q printed %q", tc.id, out.String())
		}
	}
}

func TestGetUsage(t *testing.T) {
	getenv := withProfile(t)
	for _, args := range [][]string{{"get"}, {"get", "a", "b"}} {
		var ue usageError
		if err := run(t.Context(), args, getenv, nil, &bytes.Buffer{}); !errors.As(err, &ue) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	// "--" ends the flags: an id may start with a dash
	err := run(t.Context(), []string{"get", "--", "-x"}, getenv, nil, &bytes.Buffer{})
	if !errors.Is(err, errNotFound) || !strings.HasSuffix(err.Error(), ": -x") {
		t.Errorf("get -- -x: %v", err)
	}
	err = run(t.Context(), []string{"get", "--redis-url", "redis://u:s3cret@h:x/0", "u"}, getenv, nil, &bytes.Buffer{})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("bad URL: %v (must fail, without the password)", err)
	}
}

func TestGetFollowsTheLinkOfAnAnonymousID(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.HSet("t:profile:{u-1}", "customer_id", "u-1", "web_visits", "3", "app_launches", "0")
	mr.Set("t:profile:{anon:a-1}:link", "u-1")
	mr.HSet("t:profile:{u-1}:links", "a-1", "f")
	mr.Set("t:profile:{anon:a-2}:link", "u-2") // a user without a profile yet
	env := map[string]string{"PROFILED_REDIS_URL": "redis://" + mr.Addr() + "/0", "PROFILED_REDIS_KEY_PREFIX": "t:"}
	getenv := func(k string) string { return env[k] }
	var out bytes.Buffer
	if err := run(t.Context(), []string{"get", "anon:a-1"}, getenv, nil, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "anon:a-1 is linked to u-1\nProfile u-1\n") || !strings.Contains(out.String(), "Linked anon IDs     1 (a-1)") {
		t.Errorf("output:\n%s", out.String())
	}
	err := run(t.Context(), []string{"get", "anon:a-2"}, getenv, nil, &out)
	if err == nil || !strings.Contains(err.Error(), "anon:a-2 is linked to u-2, which has no profile yet") {
		t.Errorf("err = %v", err)
	}
}
