// Package api is profiled's read API: one profile's card as JSON for
// programs (GET /v1/profiles/{id}) and as an HTML page for people
// (GET /profiles/{id}), behind a bearer token that a browser can also send
// as the password of HTTP Basic auth.
//
// It serves personal data, so it has no anonymous mode: New refuses an
// empty token, every route (unknown ones too) answers 401 without it, and
// its logs carry ids, routes and statuses, never a field's value.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/profiled/profiled/internal/view"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

// ErrNoToken is returned by New without a token: the API never serves
// profiles to anyone who asks.
var ErrNoToken = errors.New("a token is required")

// Lookup reads one profile, following the link of an anonymous id to its
// user (sink.Read). It returns an error that matches sink.ErrNotFound for
// an unknown id (a *sink.LinkedError for an id linked to a user without a
// profile); any other error means the store could not answer.
type Lookup func(ctx context.Context, id string) (sink.Found, error)

// Config configures the Handler.
type Config struct {
	// Token is the secret a client must present, as "Authorization:
	// Bearer <token>" or as the password of HTTP Basic auth. Required.
	Token string
	// Timeout bounds each profile read; 5s when zero.
	Timeout time.Duration
	// Now is the clock the age is computed at; time.Now when nil.
	Now func() time.Time
}

// Handler serves the read API. Create it with New.
type Handler struct {
	cfg       Config
	tokenHash [sha256.Size]byte
	lookup    Lookup
	log       zerolog.Logger
	mux       *http.ServeMux
	pages     *template.Template
}

//go:embed page.html
var pageFS embed.FS

// New returns a Handler answering from lookup. It fails without a token.
func New(cfg Config, lookup Lookup, log zerolog.Logger) (*Handler, error) {
	if cfg.Token == "" {
		return nil, ErrNoToken
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pages, err := template.New("").Funcs(template.FuncMap{
		"icon": icon, "escapeID": EscapeID,
	}).ParseFS(pageFS, "page.html")
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, tokenHash: sha256.Sum256([]byte(cfg.Token)), lookup: lookup,
		log: log.With().Str("component", "api").Logger(), mux: http.NewServeMux(), pages: pages}
	// {id} is one path segment: clients path-escape ids (url.PathEscape),
	// so an id holding "/" arrives as %2F and is unescaped here.
	h.mux.HandleFunc("GET /v1/profiles/{id}", h.profileJSON)
	h.mux.HandleFunc("GET /profiles/{id}", h.profilePage)
	h.mux.HandleFunc("GET /profiles", h.open)
	h.mux.HandleFunc("GET /{$}", h.index)
	return h, nil
}

// ServeHTTP checks the token, then routes. Unknown routes answer 401 too
// without it, so the API tells an unauthenticated caller nothing.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	secureHeaders(rec.Header())
	if h.authorised(r) {
		var w http.ResponseWriter = rec
		if _, pattern := h.mux.Handler(r); pattern == "" && strings.HasPrefix(r.URL.Path, "/v1/") {
			// the mux's own answers (404, 405) are plain text; under /v1/
			// every error is JSON
			w = &jsonErrors{ResponseWriter: rec, h: h, r: r}
		}
		h.mux.ServeHTTP(w, r)
	} else {
		rec.Header().Set("WWW-Authenticate", `Basic realm="profiled", charset="UTF-8"`)
		h.fail(rec, r, http.StatusUnauthorized, "A valid token is required.")
	}
	// The id is logged (ids are not personal field values); the query,
	// the Authorization header and the body never are.
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	h.log.Info().Str("route", route).Str("id", r.PathValue("id")).Int("status", rec.status).
		Dur("duration", time.Since(start)).Str("remote", r.RemoteAddr).Msg("api request")
}

// authorised compares the presented token with the configured one in
// constant time. Both are hashed first: subtle.ConstantTimeCompare returns
// at once on a length mismatch, which would tell the token's length.
func (h *Handler) authorised(r *http.Request) bool {
	var given string
	auth := r.Header.Get("Authorization")
	if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		given = strings.TrimSpace(tok)
	} else if _, pass, ok := r.BasicAuth(); ok {
		given = pass // any user name: the token is the credential
	} else {
		return false
	}
	g := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(g[:], h.tokenHash[:]) == 1
}

// jsonErrors rewrites an error the mux writes itself (http.Error's plain
// text) as the API's JSON error, keeping its status and headers such as
// Allow; anything below 400 (a redirect to a cleaned path) passes as it is.
type jsonErrors struct {
	http.ResponseWriter
	h        *Handler
	r        *http.Request
	replaced bool
}

func (j *jsonErrors) WriteHeader(code int) {
	if code < 400 {
		j.ResponseWriter.WriteHeader(code)
		return
	}
	j.replaced = true
	msg := "No such route."
	if code == http.StatusMethodNotAllowed {
		msg = "This route does not answer this method; see the Allow header."
	}
	j.h.fail(j.ResponseWriter, j.r, code, msg)
}

func (j *jsonErrors) Write(b []byte) (int, error) {
	if j.replaced {
		return len(b), nil // the plain-text body, already replaced
	}
	return j.ResponseWriter.Write(b)
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// secureHeaders: the pages hold personal data and need nothing from
// anywhere (styles and icons are inline; no script at all).
func secureHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
}

// card reads and builds the card of the request's profile, writing the
// error response itself when it cannot.
func (h *Handler) card(w http.ResponseWriter, r *http.Request) (view.Card, bool) {
	id := r.PathValue("id")
	if profile.ValidateProfileID(id) != nil {
		// never written, so never found: an id is not repaired (an id
		// that is not valid UTF-8 is not the id with U+FFFD in it)
		h.fail(w, r, http.StatusNotFound, "No profile has this id.")
		return view.Card{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	found, err := h.lookup(ctx, id)
	var linked *sink.LinkedError
	switch {
	case errors.As(err, &linked):
		h.fail(w, r, http.StatusNotFound, linked.From+" is linked to "+linked.User+", which has no profile yet.")
		return view.Card{}, false
	case errors.Is(err, sink.ErrNotFound):
		h.fail(w, r, http.StatusNotFound, "No profile has this id.")
		return view.Card{}, false
	case err != nil:
		h.log.Error().Err(err).Str("id", id).Msg("reading a profile")
		h.fail(w, r, http.StatusServiceUnavailable, "The profile store is unavailable; try again.")
		return view.Card{}, false
	}
	return view.NewLinked(found.ID, found.Fields, found.LinkedFrom, found.AnonymousIDs, h.cfg.Now()), true
}

func (h *Handler) profileJSON(w http.ResponseWriter, r *http.Request) {
	c, ok := h.card(w, r)
	if !ok {
		return
	}
	b, err := json.Marshal(c)
	if err != nil {
		h.fail(w, r, http.StatusInternalServerError, "Encoding the profile failed.")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// pageData is what page.html renders.
type pageData struct {
	Title   string
	Card    *view.Card
	AsOf    string
	Missing string // the id of a profile that was not found
	Message string
}

func (h *Handler) profilePage(w http.ResponseWriter, r *http.Request) {
	c, ok := h.card(w, r)
	if !ok {
		return
	}
	if c.LinkedFrom != "" { // the person's page is their user's
		http.Redirect(w, r, "/profiles/"+EscapeID(c.ID), http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "card", pageData{
		Title: "Profile " + c.ID,
		Card:  &c,
		AsOf:  h.cfg.Now().In(zoneOf(c)).Format("Jan 2, 2006"),
	})
}

func zoneOf(c view.Card) *time.Location {
	if l, err := time.LoadLocation(c.Zone); err == nil {
		return l
	}
	return time.UTC
}

// index is a form to open a profile by id, for people who have an id
// but not a link.
func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "index", pageData{Title: "Open a profile"})
}

// open redirects the index form to the profile's page, escaping the id.
func (h *Handler) open(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	if id == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/profiles/"+EscapeID(id), http.StatusSeeOther)
}

// EscapeID path-escapes a profile id for the routes' {id} segment:
// url.PathEscape, with the ids "." and ".." written as %2E and %2E%2E, since
// HTTP path cleaning would otherwise remove them (ids are any non-empty
// text without braces or control characters, so these are ids too).
func EscapeID(id string) string {
	if id == "." || id == ".." {
		return strings.Repeat("%2E", len(id))
	}
	return url.PathEscape(id)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name string, data pageData) {
	var b bytes.Buffer
	if err := h.pages.ExecuteTemplate(&b, name, data); err != nil {
		h.log.Error().Err(err).Str("page", name).Msg("rendering a page")
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// fail answers in the caller's language: JSON under /v1/, a page for
// people elsewhere.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/v1/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		b, _ := json.Marshal(map[string]string{"error": msg})
		_, _ = w.Write(append(b, '\n'))
		return
	}
	d := pageData{Title: http.StatusText(status), Message: msg}
	if status == http.StatusNotFound {
		d.Missing = r.PathValue("id")
	}
	h.render(w, r, status, "message", d)
}
