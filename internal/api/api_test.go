package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/profiled/profiled/internal/api"
	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/internal/view"
	"github.com/profiled/profiled/sink"
)

const token = "t0ken-for-tests-only-4f1c2a"

var now = time.Date(2026, 11, 28, 9, 15, 2, 0, time.UTC)

// stored is a profile as the pipeline stores it; its personal values must
// reach the response bodies and never the logs.
func stored() map[string]string {
	return map[string]string{
		"customer_id": "u/1001", "anonymous_id": "a-7f3c",
		"email": "Priya.Sharma@example.com", "phone": "+919876543210",
		"birthday": "1992-03-14", "customer_type": "Gold",
		"city": "Pune", "country": "India", "latitude": "18.5204", "longitude": "73.8567",
		"timezone":   "Asia/Kolkata",
		"first_seen": "2026-11-19T13:10:00.000Z", "first_seen_channel": "web",
		"last_seen": "2026-11-27T21:05:44.500Z", "last_seen_channel": "app",
		"app_launches": "2", "web_visits": "1",
		"trait.plan": "annual", "trait.note": `<script>alert("x")</script>`,
	}
}

// personal lists the values that must never be logged.
var personal = []string{"Priya", "example.com", "9876543210", "98765", "1992", "Pune", "India", "18.5204", "73.8567", "annual", "Gold", "alert"}

type store struct {
	mu       sync.Mutex
	profiles map[string]map[string]string
	links    map[string]string // anon:<A> -> user
	err      error
	ids      []string
}

func (s *store) lookup(_ context.Context, id string) (sink.Found, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, id)
	f := sink.Found{ID: id}
	if s.err != nil {
		return f, s.err
	}
	if u, ok := s.links[id]; ok {
		f.ID, f.LinkedFrom = u, id
	}
	h, ok := s.profiles[f.ID]
	if !ok {
		if f.LinkedFrom != "" {
			return f, &sink.LinkedError{From: id, User: f.ID}
		}
		return f, sink.ErrNotFound
	}
	f.Fields = h
	for a, u := range s.links {
		if u == f.ID {
			f.AnonymousIDs = append(f.AnonymousIDs, strings.TrimPrefix(a, "anon:"))
		}
	}
	return f, nil
}

func newServer(t *testing.T, st *store) (*httptest.Server, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	h, err := api.New(api.Config{Token: token, Now: func() time.Time { return now }}, st.lookup, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, logs
}

func get(t *testing.T, rawURL string, header ...string) (*http.Response, string) {
	t.Helper()
	return request(t, "GET", rawURL, header...)
}

// request sends one request without following redirects and returns the
// response with its body read.
func request(t *testing.T, method, rawURL string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestNewRefusesAnEmptyToken(t *testing.T) {
	if _, err := api.New(api.Config{}, (&store{}).lookup, zerolog.Nop()); !errors.Is(err, api.ErrNoToken) {
		t.Fatalf("New without a token: %v, want ErrNoToken", err)
	}
}

func TestAuth(t *testing.T) {
	st := &store{profiles: map[string]map[string]string{"u/1001": stored()}}
	srv, _ := newServer(t, st)
	path := "/v1/profiles/" + url.PathEscape("u/1001")
	tests := []struct {
		name   string
		header []string
		want   int
	}{
		{"no credentials", nil, 401},
		{"bearer", []string{"Authorization", "Bearer " + token}, 200},
		{"bearer, scheme in any case", []string{"Authorization", "bearer " + token}, 200},
		{"wrong bearer", []string{"Authorization", "Bearer " + token + "x"}, 401},
		{"bearer prefix of the token", []string{"Authorization", "Bearer " + token[:10]}, 401},
		{"empty bearer", []string{"Authorization", "Bearer "}, 401},
		{"basic, token as password, any user", []string{"Authorization", basic("support", token)}, 200},
		{"basic, empty user", []string{"Authorization", basic("", token)}, 200},
		{"basic, token as user name", []string{"Authorization", basic(token, "")}, 401},
		{"basic, wrong password", []string{"Authorization", basic("support", "nope")}, 401},
		{"token in the query is not accepted", nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := srv.URL + path
			if strings.Contains(tt.name, "query") {
				u += "?token=" + token
			}
			resp, body := get(t, u, tt.header...)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.want, body)
			}
			if tt.want == 401 {
				if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="profiled"`) {
					t.Errorf("WWW-Authenticate = %q", got)
				}
				if strings.Contains(body, "Priya") {
					t.Error("a 401 carries profile data")
				}
			}
		})
	}
	// The store is never asked without the token.
	st.mu.Lock()
	n := len(st.ids)
	st.mu.Unlock()
	if n != 4 {
		t.Errorf("store asked %d times, want 4 (the authorised requests only)", n)
	}
	// Unknown routes, and the page, want the token too.
	for _, p := range []string{"/", "/nothing", "/profiles/u", "/v1/profiles/"} {
		if resp, _ := get(t, srv.URL+p); resp.StatusCode != 401 {
			t.Errorf("GET %s without a token: %d, want 401", p, resp.StatusCode)
		}
	}
}

func TestProfileJSON(t *testing.T) {
	srv, _ := newServer(t, &store{profiles: map[string]map[string]string{"u/1001": stored()}})
	resp, body := get(t, srv.URL+"/v1/profiles/u%2F1001", "Authorization", "Bearer "+token)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store: the body is personal data", cc)
	}
	want, _ := json.Marshal(view.New("u/1001", stored(), now))
	if strings.TrimSpace(body) != string(want) {
		t.Errorf("body\n%s\nwant\n%s", body, want)
	}
	var got struct {
		ID    string `json:"id"`
		Email string `json:"email"`
		Age   struct{ Years, Months int }
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != "u/1001" || got.Email != "Priya.Sharma@example.com" || got.Age.Years != 34 || got.Age.Months != 8 {
		t.Errorf("decoded %+v", got)
	}
}

func TestNotFoundAndStoreErrors(t *testing.T) {
	st := &store{profiles: map[string]map[string]string{}}
	srv, _ := newServer(t, st)
	auth := []string{"Authorization", "Bearer " + token}

	resp, body := get(t, srv.URL+"/v1/profiles/nobody", auth...)
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown id, JSON: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = get(t, srv.URL+"/profiles/nobody%3Cb%3E", auth...)
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("unknown id, page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, "nobody&lt;b&gt;") || strings.Contains(body, "nobody<b>") {
		t.Errorf("the not-found page does not show the escaped id:\n%s", body)
	}

	st.mu.Lock()
	st.err = errors.New("dial tcp: connection refused")
	st.mu.Unlock()
	if resp, body := get(t, srv.URL+"/v1/profiles/u", auth...); resp.StatusCode != 503 || strings.Contains(body, "refused") {
		t.Errorf("store down: %d %s, want 503 without the internal error", resp.StatusCode, body)
	}
}

// TestJSONErrorsUnderV1 proves that under /v1/ every error is JSON, the
// router's own 404 and 405 included; redirects and the page routes keep
// their form.
func TestJSONErrorsUnderV1(t *testing.T) {
	st := &store{profiles: map[string]map[string]string{"u": {"web_visits": "1"}}}
	srv, _ := newServer(t, st)
	auth := []string{"Authorization", "Bearer " + token}
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/", 404, ""},
		{"GET", "/v1/nothing", 404, ""},
		{"GET", "/v1/profiles", 404, ""},
		{"GET", "/v1/profiles/", 404, ""},
		{"GET", "/v1/profiles/u/more", 404, ""},
		{"POST", "/v1/profiles/u", 405, "GET, HEAD"},
		{"DELETE", "/v1/profiles/u", 405, "GET, HEAD"},
		{"GET", "/v1/profiles/nobody", 404, ""},
	}
	for _, tc := range tests {
		resp, body := request(t, tc.method, srv.URL+tc.path, auth...)
		var e struct{ Error string }
		if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d %q %q; want %d with a JSON error", tc.method, tc.path, resp.StatusCode,
				resp.Header.Get("Content-Type"), body, tc.status)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: the secure headers are missing", tc.method, tc.path)
		}
	}
	// the mux's redirect to a cleaned path is no error
	if resp, _ := get(t, srv.URL+"/v1/profiles/x/../u", auth...); resp.StatusCode != http.StatusTemporaryRedirect ||
		resp.Header.Get("Location") != "/v1/profiles/u" {
		t.Errorf("cleaned path: %d to %q, want a redirect to /v1/profiles/u", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, srv.URL+"/nothing", auth...); resp.StatusCode != 404 || resp.Header.Get("Content-Type") == "application/json" {
		t.Errorf("outside /v1/: %d %s, want a 404 that is not JSON", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestIDsThatAreNotUTF8AreNotFound proves the read API applies the
// decoder's rule: an id that is not valid UTF-8 is never written, so it is
// not found, without asking the store; in particular it is not read as the
// id with U+FFFD in its place.
func TestIDsThatAreNotUTF8AreNotFound(t *testing.T) {
	st := &store{profiles: map[string]map[string]string{
		"\ufffd\ufffduser": {"web_visits": "2"}, "\xff\xfeuser": {"web_visits": "1"},
	}}
	srv, _ := newServer(t, st)
	auth := []string{"Authorization", "Bearer " + token}
	for _, path := range []string{"/v1/profiles/%FF%FEuser", "/v1/profiles/%FE%FFuser", "/v1/profiles/anon:%C3",
		"/v1/profiles/%ED%A0%80", "/profiles/%FF%FEuser"} {
		resp, body := get(t, srv.URL+path, auth...)
		if resp.StatusCode != 404 || strings.Contains(body, "web_visits") {
			t.Errorf("GET %s: %d %s, want 404", path, resp.StatusCode, body)
		}
		if strings.HasPrefix(path, "/v1/") && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %s, want JSON", path, resp.Header.Get("Content-Type"))
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.ids) != 0 {
		t.Errorf("the store was asked for %q", st.ids)
	}
}

func TestEscapedIDs(t *testing.T) {
	ids := []string{"u/1001", "anon:a b", "ünï/cødé", "a%2Fb", "..", ".", "x?y#z", "50%", "a/../b"}
	profiles := map[string]map[string]string{}
	for _, id := range ids {
		profiles[id] = map[string]string{"customer_id": id, "web_visits": "1"}
	}
	st := &store{profiles: profiles}
	srv, _ := newServer(t, st)
	for _, id := range ids {
		for _, prefix := range []string{"/v1/profiles/", "/profiles/"} {
			resp, body := get(t, srv.URL+prefix+api.EscapeID(id), "Authorization", "Bearer "+token)
			if resp.StatusCode != 200 {
				t.Errorf("GET %s%s: %d %s", prefix, api.EscapeID(id), resp.StatusCode, body)
			}
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, id := range st.ids {
		if id != ids[i/2] {
			t.Errorf("lookup %d got id %q, want %q", i, id, ids[i/2])
		}
	}
}

func TestPage(t *testing.T) {
	srv, _ := newServer(t, &store{profiles: map[string]map[string]string{"u/1001": stored()}})
	resp, body := get(t, srv.URL+"/profiles/u%2F1001", "Authorization", basic("me", token))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy = %q: the page needs no script and nothing from anywhere", csp)
	}
	c := view.New("u/1001", stored(), now)
	for _, r := range append(c.Rows, c.Traits...) {
		for _, s := range []string{r.Label, r.Value} {
			if !strings.Contains(body, htmlEscape(s)) {
				t.Errorf("the page lacks %q", s)
			}
		}
	}
	if n := strings.Count(body, `<svg class="icon"`); n < len(c.Rows)+len(c.Traits) {
		t.Errorf("%d icons for %d rows", n, len(c.Rows)+len(c.Traits))
	}
	if strings.Contains(body, `<script>alert`) {
		t.Error("a trait value reached the page unescaped")
	}
	for _, external := range []string{"http://", "https://", "//fonts", "<link", "<img", "<script"} {
		if strings.Contains(body, external) {
			t.Errorf("the page refers to %q: it must load no external assets", external)
		}
	}
	if !strings.Contains(body, `name="viewport"`) || !strings.Contains(body, "@media (max-width") {
		t.Error("the page is not responsive")
	}
}

func htmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&#34;")
		case '\'':
			b.WriteString("&#39;")
		case '+':
			b.WriteString("&#43;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestIndexAndOpen(t *testing.T) {
	srv, _ := newServer(t, &store{})
	auth := []string{"Authorization", "Bearer " + token}
	if resp, body := get(t, srv.URL+"/", auth...); resp.StatusCode != 200 || !strings.Contains(body, `action="/profiles"`) {
		t.Errorf("index: %d", resp.StatusCode)
	}
	resp, _ := get(t, srv.URL+"/profiles?id="+url.QueryEscape(" anon:a/b "), auth...)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profiles/anon:a%2Fb" {
		t.Errorf("open: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestLogsCarryNoPersonalValues(t *testing.T) {
	st := &store{profiles: map[string]map[string]string{"u/1001": stored()}}
	srv, logs := newServer(t, st)
	for _, p := range []string{"/v1/profiles/u%2F1001", "/profiles/u%2F1001", "/v1/profiles/nobody", "/profiles/u%2F1001?email=Priya"} {
		get(t, srv.URL+p, "Authorization", "Bearer "+token)
		get(t, srv.URL+p)
	}
	st.mu.Lock()
	st.err = errors.New("redis: connection pool timeout")
	st.mu.Unlock()
	get(t, srv.URL+"/profiles/u%2F1001", "Authorization", "Bearer "+token)

	out := logs.String()
	for _, v := range append(personal, token) {
		if strings.Contains(out, v) {
			t.Errorf("logs carry %q:\n%s", v, out)
		}
	}
	// What they do carry: one line per request, with route, id and status.
	if n := strings.Count(out, `"message":"api request"`); n != 9 {
		t.Errorf("%d request lines, want 9:\n%s", n, out)
	}
	for _, want := range []string{`"route":"GET /v1/profiles/{id}"`, `"id":"u/1001"`, `"status":401`, `"status":404`, `"status":503`} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

// BenchmarkPage measures rendering the HTML card, store lookup excluded.
func BenchmarkPage(b *testing.B) {
	st := &store{profiles: map[string]map[string]string{"u/1001": stored()}}
	h, err := api.New(api.Config{Token: token}, st.lookup, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/profiles/u%2F1001", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}

// Reads of a linked anonymous id follow its link (contract section 2a):
// 200 with the user's JSON and linked_from, 303 to the user's page, and
// 404 saying so when the user has no profile yet.
func TestLinkedAnonymousID(t *testing.T) {
	srv, _ := newServer(t, &store{
		profiles: map[string]map[string]string{"u/1001": stored()},
		links:    map[string]string{"anon:a-1": "u/1001", "anon:a-2": "u/1001", "anon:lonely": "u-none"},
	})
	auth := []string{"Authorization", "Bearer " + token}
	resp, body := get(t, srv.URL+"/v1/profiles/anon:a-1", auth...)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got["id"] != "u/1001" || got["linked_from"] != "anon:a-1" || len(got["anonymous_ids"].([]any)) != 2 {
		t.Errorf("linked JSON: id %v, linked_from %v, anonymous_ids %v", got["id"], got["linked_from"], got["anonymous_ids"])
	}
	resp, _ = get(t, srv.URL+"/profiles/anon:a-1", auth...)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profiles/u%2F1001" {
		t.Errorf("page: %d to %q, want 303 to the user's page", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get(t, srv.URL+"/v1/profiles/anon:lonely", auth...)
	if resp.StatusCode != 404 || !strings.Contains(body, "anon:lonely is linked to u-none, which has no profile yet") {
		t.Errorf("linked to no profile: %d %s", resp.StatusCode, body)
	}
	// the user's own JSON lists its anonymous ids, without linked_from
	_, body = get(t, srv.URL+"/v1/profiles/u%2F1001", auth...)
	if strings.Contains(body, "linked_from") || !strings.Contains(body, `"anonymous_ids":["a-`) {
		t.Errorf("user JSON: %s", body)
	}
}
