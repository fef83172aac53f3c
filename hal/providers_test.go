package hal_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Stand-ins for the providers a deployment talks to: an HTTP gateway
// behind the webhook channel and a Twilio-compatible REST API. They check
// each request the way the real receiver would (signature, credentials,
// fields) and record what they accepted.

const hookSecret = "hook-secret-0123456789"

// hookRequest is one webhook delivery as the gateway received it.
type hookRequest struct {
	ID            string `json:"id"`
	EnvironmentID string `json:"environmentId"`
	Method        string `json:"method"`
	Recipient     string `json:"recipient"`
	Locale        string `json:"locale"`
	Subject       string `json:"subject"`
	Content       string `json:"content"`
	HTML          string `json:"html"`
}

// gateway is the webhook receiver. reply decides each answer's status from
// the number of the request (1-based); nil answers 204.
type gateway struct {
	t     *testing.T
	srv   *httptest.Server
	reply func(n int) int
	delay time.Duration // before answering

	mu       sync.Mutex
	requests []hookRequest // every request, accepted or not
}

func startGateway(t *testing.T) *gateway {
	g := &gateway{t: t}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.Method != http.MethodPost || r.URL.Path != "/sms" || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get("X-Tenant") != "acme" {
		g.t.Errorf("gateway: %s %s Content-Type %q X-Tenant %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("X-Tenant"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// The documented check: HMAC-SHA256 over "<timestamp>.<body>", fresh.
	ts := r.Header.Get("X-Enrollflow-Timestamp")
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	want := "v1=" + hex.EncodeToString(mac.Sum(nil))
	sec, err := strconv.ParseInt(ts, 10, 64)
	if !hmac.Equal([]byte(r.Header.Get("X-Enrollflow-Signature")), []byte(want)) || err != nil || time.Since(time.Unix(sec, 0)).Abs() > time.Minute {
		g.t.Errorf("gateway: bad signature %q or timestamp %q", r.Header.Get("X-Enrollflow-Signature"), ts)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req hookRequest
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		g.t.Errorf("gateway: body %s: %v", body, err)
	}
	g.mu.Lock()
	g.requests = append(g.requests, req)
	n := len(g.requests)
	g.mu.Unlock()
	time.Sleep(g.delay)
	status := http.StatusNoContent
	if g.reply != nil {
		status = g.reply(n)
	}
	w.WriteHeader(status)
}

func (g *gateway) url() string { return g.srv.URL + "/sms" }

func (g *gateway) received() []hookRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]hookRequest(nil), g.requests...)
}

const (
	twilioSID   = "AC0123456789abcdef0123456789abcdef"
	twilioToken = "twilio-token-0123456789"
	twilioFrom  = "+12015559999"
)

// twilioCall is one accepted Messages or Calls request.
type twilioCall struct {
	Resource string // "Messages" or "Calls"
	Form     url.Values
	Say      []string // the spoken texts of a call's TwiML
	Language string
}

// twilioAPI answers like Twilio's REST API for Messages and Calls.
type twilioAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu    sync.Mutex
	calls []twilioCall
}

func startTwilio(t *testing.T) *twilioAPI {
	a := &twilioAPI{t: t}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

var twilioPath = regexp.MustCompile(`^/2010-04-01/Accounts/(AC[0-9a-f]{32})/(Messages|Calls)\.json$`)

func (a *twilioAPI) serve(w http.ResponseWriter, r *http.Request) {
	m := twilioPath.FindStringSubmatch(r.URL.Path)
	user, pass, ok := r.BasicAuth()
	if r.Method != http.MethodPost || m == nil || m[1] != twilioSID || !ok || user != twilioSID || pass != twilioToken ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		a.t.Errorf("twilio: %s %s auth %v", r.Method, r.URL.Path, ok)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		a.t.Errorf("twilio: form: %v", err)
	}
	call := twilioCall{Resource: m[2], Form: r.PostForm}
	if call.Resource == "Calls" {
		var twiml struct {
			Says []struct {
				Language string `xml:"language,attr"`
				Text     string `xml:",chardata"`
			} `xml:"Say"`
		}
		if err := xml.Unmarshal([]byte(r.PostForm.Get("Twiml")), &twiml); err != nil || len(twiml.Says) == 0 {
			a.t.Errorf("twilio: Twiml %q: %v", r.PostForm.Get("Twiml"), err)
		}
		for _, s := range twiml.Says {
			call.Say = append(call.Say, s.Text)
			call.Language = s.Language
		}
	}
	a.mu.Lock()
	a.calls = append(a.calls, call)
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"}`))
}

func (a *twilioAPI) received() []twilioCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]twilioCall(nil), a.calls...)
}
