package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/profiled/profiled/internal/api"
	"github.com/profiled/profiled/internal/testenv"
	"github.com/profiled/profiled/internal/view"
)

// chromium returns the browser to drive, or skips the test without one.
// In CI (CI=true) a missing browser fails the test instead: .ci/run
// installs Debian's chromium, so its absence there is a broken set-up,
// not a reason to pass silently.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROFILED_TEST_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found: .ci/run installs Debian's chromium package")
	}
	t.Skip("chromium not found (apt-get install chromium, or set PROFILED_TEST_CHROMIUM)")
	return ""
}

// artifacts is where the test leaves its screenshots: PROFILED_TEST_ARTIFACTS,
// else a fixed folder under the system's temporary directory (t.TempDir
// would delete them when the test ends).
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PROFILED_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "profiled-test-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// profilectl builds the real profilectl once per test binary.
func profilectl(t *testing.T) string {
	t.Helper()
	return testenv.Build(t, "cmd/profilectl")
}

// TestBrowserProfileCard builds a profile through the real pipeline (Kafka,
// profiled, Redis), then reads it the three ways people and programs do:
// the JSON API, profilectl get, and the HTML card in headless Chromium,
// whose every label and value must be visible, on a desktop and a phone.
func TestBrowserProfileCard(t *testing.T) {
	e := setup(t)
	browser := chromium(t)
	o := e.onNewTopic(t, 1)
	apiAddr := freeAddr(t)
	tok := make([]byte, 24)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	o.env = append(o.env, "PROFILED_API_ADDR="+apiAddr, "PROFILED_API_TOKEN="+token)

	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Minute)
	firstSeen, launch, lastSeen := now.Add(-72*time.Hour), now.Add(-30*time.Hour), now.Add(-2*time.Hour)
	ts := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	const id, anonID = "u-1001", "anon:visitor 7/b"
	location := map[string]any{"city": "Pune", "country": "India", "latitude": 18.5204, "longitude": 73.8567}
	e.produce(t, o.topic, [][]byte{
		js(map[string]any{"type": "identify", "userId": id, "anonymousId": "a-7f3c", "messageId": "card-1", "timestamp": ts(launch),
			"traits": map[string]any{
				"email": "Priya.Sharma@Example.COM", "phone": "+91 98765 43210", "birthday": "1992-03-14",
				"customerType": "Gold", "plan": "annual", "newsletter": true,
			},
			"context": map[string]any{"timezone": "Asia/Kolkata"}}),
		js(map[string]any{"type": "track", "event": "Application Opened", "userId": id, "messageId": "card-2", "timestamp": ts(launch),
			"context": map[string]any{"location": location, "timezone": "Asia/Kolkata"}}),
		js(map[string]any{"type": "page", "userId": id, "messageId": "card-3", "timestamp": ts(firstSeen), "name": "Pricing"}),
		js(map[string]any{"type": "track", "event": "App Launched", "userId": id, "messageId": "card-4", "timestamp": ts(lastSeen)}),
		js(map[string]any{"type": "page", "anonymousId": "visitor 7/b", "messageId": "card-5", "timestamp": ts(lastSeen)}),
	})
	p := e.start(t, o)
	e.waitCaughtUp(t, o.group, o.topic, 60*time.Second)

	seen := func(at time.Time, channel string) string {
		return at.In(kolkata).Format("Jan 2, 2006 15:04") + " Asia/Kolkata, via " + channel
	}
	// What a person must see, written out here rather than taken from the
	// view package, so that the test checks the whole chain.
	want := map[string]string{
		"Location":           "Pune, India",
		"Coordinates":        "18.5204, 73.8567",
		"Email":              "Priya.Sharma@example.com",
		"Phone":              "+91 98765 43210 (IN)",
		"Initially acquired": seen(firstSeen, "web"),
		"Last session":       seen(lastSeen, "app"),
		"Age":                "", // filled in from AgeAt below, as of the read
		"Birthday":           "Mar 14, 1992",
		"Customer Type":      "Gold",
		"CustomerID":         id,
		"Timezone":           "Asia/Kolkata",
		"App launches":       "2",
		"Web visits":         "1",
		"Anonymous ID":       "a-7f3c",
		"Linked anon IDs":    "1 (a-7f3c)", // linked by the identify that carries both ids
		"plan":               "annual",
		"newsletter":         "true",
	}
	ages := func() []string {
		var out []string
		for _, at := range []time.Time{time.Now(), time.Now().Add(time.Minute)} { // a read may straddle midnight
			a, _ := view.AgeAt(time.Date(1992, 3, 14, 0, 0, 0, 0, time.UTC), at, kolkata)
			out = append(out, a.String())
		}
		return out
	}

	apiGet := func(path, auth string) (int, string, http.Header) {
		req, _ := http.NewRequest("GET", "http://"+apiAddr+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error(), nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	bearer := "Bearer " + token
	eventually(t, 30*time.Second, "the read API to answer", func() bool {
		code, _, _ := apiGet("/v1/profiles/"+id, bearer)
		return code == http.StatusOK
	})

	t.Run("API", func(t *testing.T) {
		code, body, h := apiGet("/v1/profiles/"+id, bearer)
		if code != 200 || h.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /v1/profiles/%s: %d %s %s", id, code, h.Get("Content-Type"), body)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range map[string]any{
			"id": id, "customer_id": id, "email": "Priya.Sharma@example.com", "phone": "+919876543210",
			"birthday": "1992-03-14", "customer_type": "Gold", "city": "Pune", "country": "India",
			"latitude": 18.5204, "longitude": 73.8567, "timezone": "Asia/Kolkata",
			"first_seen": firstSeen.Format("2006-01-02T15:04:05.000Z"), "first_seen_channel": "web",
			"last_seen": lastSeen.Format("2006-01-02T15:04:05.000Z"), "last_seen_channel": "app",
			"app_launches": 2.0, "web_visits": 1.0, "trait.plan": "annual", "trait.newsletter": "true",
		} {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
		if age, ok := got["age"].(map[string]any); !ok || age["years"] == nil || age["months"] == nil {
			t.Errorf("age = %#v, want years and months", got["age"])
		}

		// An anonymous id with a space and a slash, path-escaped.
		code, body, _ = apiGet("/v1/profiles/"+api.EscapeID(anonID), bearer)
		if code != 200 || !strings.Contains(body, `"anonymous_id":"visitor 7/b"`) || strings.Contains(body, `"email"`) {
			t.Errorf("anonymous profile: %d %s", code, body)
		}
		if code, _, h := apiGet("/v1/profiles/"+id, ""); code != 401 || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("without the token: %d, WWW-Authenticate %q; want 401 with a Basic challenge", code, h.Get("WWW-Authenticate"))
		}
		if code, _, _ := apiGet("/v1/profiles/"+id, "Bearer wrong-"+token); code != 401 {
			t.Errorf("with a wrong token: %d, want 401", code)
		}
		if code, _, _ := apiGet("/v1/profiles/nobody", bearer); code != 404 {
			t.Errorf("unknown id: %d, want 404", code)
		}
	})

	t.Run("CLI", func(t *testing.T) {
		bin := profilectl(t)
		ctl := func(args ...string) (string, string, int) {
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "PROFILED_REDIS_URL="+e.redisURL, "PROFILED_REDIS_KEY_PREFIX="+o.prefix)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
		}
		out, errOut, code := ctl("get", id)
		if code != 0 {
			t.Fatalf("profilectl get: exit %d: %s", code, errOut)
		}
		for label, value := range want {
			if value == "" {
				continue
			}
			if !strings.Contains(out, label) || !strings.Contains(out, value) {
				t.Errorf("profilectl get lacks %s: %s:\n%s", label, value, out)
			}
		}
		if a := ages(); !strings.Contains(out, a[0]) && !strings.Contains(out, a[1]) {
			t.Errorf("profilectl get lacks the age %s:\n%s", a[0], out)
		}
		t.Logf("profilectl get %s:\n%s", id, out)

		out, errOut, code = ctl("get", "--json", id)
		var got map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got["email"] != "Priya.Sharma@example.com" || got["age"] == nil {
			t.Errorf("profilectl get --json: exit %d, %s %s", code, out, errOut)
		}

		_, errOut, code = ctl("get", "nobody")
		if code != 1 || !strings.Contains(errOut, "profile not found: nobody") {
			t.Errorf("unknown id: exit %d, stderr %q; want 1 and \"profile not found: nobody\"", code, errOut)
		}
	})

	t.Run("Browser", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var chromeOut syncBuffer
		actx, acancel := chromedp.NewExecAllocator(ctx,
			chromedp.ExecPath(browser),
			chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
			chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true),
			chromedp.Flag("disable-sync", true),
			chromedp.Flag("disable-dev-shm-usage", true),
			chromedp.UserDataDir(t.TempDir()),
			chromedp.WindowSize(1280, 900),
			chromedp.CombinedOutput(&chromeOut),
		)
		defer acancel()
		bctx, bcancel := chromedp.NewContext(actx)
		defer bcancel()
		defer func() {
			if t.Failed() {
				t.Logf("chromium output:\n%s", tail(chromeOut.String(), 30))
			}
		}()

		// A person's browser sends the token as the Basic auth password;
		// the header is set on the tab so the URL carries no secret.
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("support:"+token))
		err := chromedp.Do(bctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders,
				network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": basic}})
			return err
		}))
		if err != nil {
			t.Fatal(err)
		}

		dir := artifacts(t)
		for _, vp := range []struct {
			name          string
			width, height int64
			mobile        bool
		}{
			{"desktop", 1200, 900, false},
			{"mobile", 390, 844, true},
		} {
			opts := []chromedp.EmulateViewportOption{}
			if vp.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait, chromedp.EmulateScale(2))
			}
			start := time.Now()
			if err := chromedp.Do(bctx,
				chromedp.EmulateViewport(vp.width, vp.height, opts...),
				chromedp.Navigate("http://"+apiAddr+"/profiles/"+api.EscapeID(id)),
				chromedp.WaitVisible(chromedp.ID("card")),
			); err != nil {
				t.Fatalf("%s: open the card: %v", vp.name, err)
			}
			loaded := time.Since(start)
			checkCardVisible(t, bctx, vp.name, want, ages())

			nav, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]float64](`(() => {
				const n = performance.getEntriesByType('navigation')[0];
				return {response: n.responseEnd - n.requestStart, dom: n.domContentLoadedEventEnd, load: n.loadEventEnd,
					bytes: n.transferSize, scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth};
			})()`))
			if err != nil {
				t.Fatal(err)
			}
			if nav["scrollWidth"] > nav["width"] {
				t.Errorf("%s: the page is %v px wide in a %v px viewport: it scrolls sideways", vp.name, nav["scrollWidth"], nav["width"])
			}
			t.Logf("%s: card open and visible in %s (server response %.1f ms, DOM ready %.1f ms, load %.1f ms, %v bytes)",
				vp.name, loaded.Round(time.Millisecond), nav["response"], nav["dom"], nav["load"], nav["bytes"])

			png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "profile-card-"+vp.name+".png")
			if err := os.WriteFile(file, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s (%d bytes)", file, len(png))
			if vp.name == "desktop" && os.Getenv("PROFILED_TEST_UPDATE_SCREENSHOT") == "true" {
				if err := os.WriteFile("../../testdata/profile-card.png", png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}

		// A profile with little in it: the rows it lacks say "not set".
		if err := chromedp.Do(bctx,
			chromedp.EmulateViewport(1200, 900),
			chromedp.Navigate("http://"+apiAddr+"/profiles/"+api.EscapeID(anonID)),
			chromedp.WaitVisible(chromedp.ID("card")),
		); err != nil {
			t.Fatal(err)
		}
		text, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, anonID) || strings.Count(text, view.NotSet) != 9 || !strings.Contains(text, "dates in UTC") {
			t.Errorf("the anonymous profile's card:\n%s", text)
		}

		// A linked anonymous id's page is its user's (a 303 the browser
		// follows), and the user's card lists the id (contract section 2a).
		if err := chromedp.Do(bctx,
			chromedp.Navigate("http://"+apiAddr+"/profiles/"+api.EscapeID("anon:a-7f3c")),
			chromedp.WaitVisible(chromedp.ID("card")),
		); err != nil {
			t.Fatal(err)
		}
		text, err = chromedp.Run(bctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil {
			t.Fatal(err)
		}
		at, err := chromedp.Run(bctx, chromedp.Evaluate[string](`location.pathname`))
		if err != nil {
			t.Fatal(err)
		}
		if at != "/profiles/"+id || !strings.Contains(strings.ToLower(text), "linked anon ids") || !strings.Contains(text, "1 (a-7f3c)") {
			t.Errorf("anon:a-7f3c's page: at %s\n%s", at, text)
		}
	})

	// The API's request log names ids and statuses, never a value.
	logs := p.out.String()
	if !strings.Contains(logs, `"message":"api request"`) {
		t.Error("no api request in the log")
	}
	for _, v := range []string{"Priya", "98765", "1992-03-14", "Pune", "18.5204", "annual", token} {
		if strings.Contains(logs, v) {
			t.Errorf("profiled's log carries %q", v)
		}
	}
}

// checkCardVisible checks in the browser that every row's label and value
// is rendered where a person can see it: in the page's text, with a box of
// some size, not hidden, not transparent.
func checkCardVisible(t *testing.T, ctx context.Context, viewport string, want map[string]string, ages []string) {
	t.Helper()
	type shown struct {
		Label, Value string
		Visible      bool
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]shown](`(() => {
		const visible = (el) => {
			const r = el.getBoundingClientRect(), s = getComputedStyle(el);
			return r.width > 0 && r.height > 0 && s.visibility === 'visible' && s.display !== 'none' && parseFloat(s.opacity) > 0;
		};
		return [...document.querySelectorAll('[data-row], [data-trait]')].map((li) => {
			const l = li.querySelector('.label'), v = li.querySelector('.value'), icon = li.querySelector('svg');
			return {Label: l.innerText, Value: v.innerText, Visible: visible(li) && visible(l) && visible(v) && !!icon && visible(icon)};
		});
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]shown{}
	for _, r := range rows {
		// CSS upper-cases the labels on screen; innerText reports them so.
		got[strings.ToLower(r.Label)] = r
	}
	for label, value := range want {
		r, ok := got[strings.ToLower(label)]
		switch {
		case !ok:
			t.Errorf("%s: no row %q on the page", viewport, label)
		case !r.Visible:
			t.Errorf("%s: row %q is not visible", viewport, label)
		case label == "Age":
			if r.Value != ages[0] && r.Value != ages[1] {
				t.Errorf("%s: Age = %q, want %q", viewport, r.Value, ages[0])
			}
		case r.Value != value:
			t.Errorf("%s: %s = %q, want %q", viewport, label, r.Value, value)
		}
		if ok && !strings.Contains(strings.ToLower(text), strings.ToLower(label)) {
			t.Errorf("%s: label %q is not in the page's visible text", viewport, label)
		}
		if ok && value != "" && !strings.Contains(text, value) {
			t.Errorf("%s: value %q is not in the page's visible text", viewport, value)
		}
	}
	if len(rows) != len(want) {
		t.Errorf("%s: %d rows on the page, want %d", viewport, len(rows), len(want))
	}
}
