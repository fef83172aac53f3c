package httpchannel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
)

func TestStatusError(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		status     int
		retryAfter string
		wantNil    bool
		permanent  bool
		misconfig  bool
		retryWait  time.Duration
	}{
		{status: 200, wantNil: true},
		{status: 202, wantNil: true},
		{status: 204, wantNil: true},
		{status: 299, wantNil: true},
		{status: 100, permanent: true},
		{status: 301, permanent: true, misconfig: true}, // redirects are not followed
		{status: 302, permanent: true, misconfig: true},
		{status: 307, permanent: true, misconfig: true},
		{status: 308, permanent: true, misconfig: true},
		{status: 400, permanent: true},
		{status: 401, permanent: true, misconfig: true},
		{status: 402, permanent: true},
		{status: 403, permanent: true, misconfig: true},
		{status: 404, permanent: true, misconfig: true},
		{status: 405, permanent: true, misconfig: true},
		{status: 406, permanent: true},
		{status: 407, permanent: true, misconfig: true},
		{status: 409, permanent: true},
		{status: 410, permanent: true},
		{status: 413, permanent: true},
		{status: 422, permanent: true},
		{status: 429},
		{status: 429, retryAfter: "7", retryWait: 7 * time.Second},
		{status: 429, retryAfter: now.Add(30 * time.Second).Format(http.TimeFormat), retryWait: 30 * time.Second},
		{status: 429, retryAfter: "soon"},
		{status: 500},
		{status: 502},
		{status: 503, retryAfter: "7"}, // only a 429's hint is taken
		{status: 599},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s", tt.status, tt.retryAfter), func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Header: http.Header{}, Body: http.NoBody}
			if tt.retryAfter != "" {
				resp.Header.Set("Retry-After", tt.retryAfter)
			}
			called := false
			err := StatusError(resp, now, func(r *http.Response) string {
				called = true
				return "test " + HTTPReason(r)
			})
			if tt.wantNil {
				if err != nil || called {
					t.Fatalf("StatusError = %v (reason called: %v), want nil without calling reason", err, called)
				}
				return
			}
			var de *delivery.Error
			if !errors.As(err, &de) {
				t.Fatalf("StatusError = %#v, want a *delivery.Error", err)
			}
			if want := fmt.Sprintf("test http %d", tt.status); de.Reason != want {
				t.Errorf("Reason = %q, want %q", de.Reason, want)
			}
			if de.Permanent != tt.permanent {
				t.Errorf("Permanent = %v, want %v", de.Permanent, tt.permanent)
			}
			if de.Misconfigured != tt.misconfig || delivery.IsMisconfigured(err) != tt.misconfig {
				t.Errorf("Misconfigured = %v, want %v", de.Misconfigured, tt.misconfig)
			}
			if MisconfiguredStatus(tt.status) != tt.misconfig {
				t.Errorf("MisconfiguredStatus(%d) = %v, want %v", tt.status, !tt.misconfig, tt.misconfig)
			}
			if de.RetryAfter != tt.retryWait {
				t.Errorf("RetryAfter = %v, want %v", de.RetryAfter, tt.retryWait)
			}
			if de.Err != nil {
				t.Errorf("Err = %v, want nil", de.Err)
			}
		})
	}
}

func TestStatusErrorDefaultReason(t *testing.T) {
	err := StatusError(&http.Response{StatusCode: 503, Header: http.Header{}, Body: http.NoBody}, time.Now(), nil)
	if got := delivery.ReasonOf(err); got != "http 503" {
		t.Errorf("reason = %q, want %q", got, "http 503")
	}
	if delivery.IsPermanent(err) {
		t.Error("503 is permanent, want transient")
	}
}

// timeoutError is a net.Error that timed out.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestTransportError(t *testing.T) {
	const secretURL = "https://gateway.example/hook?token=s3cr3t"
	wrap := func(err error) error { return &url.Error{Op: "Post", URL: secretURL, Err: err} }
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name   string
		err    error
		reason string
		cause  error
	}{
		{"deadline", wrap(context.DeadlineExceeded), "timeout", context.DeadlineExceeded},
		{"net timeout", wrap(timeoutError{}), "timeout", timeoutError{}},
		{"wrapped deadline", wrap(fmt.Errorf("reading: %w", context.DeadlineExceeded)), "timeout", context.DeadlineExceeded},
		{"refused", wrap(refused), "connection failed", syscall.ECONNREFUSED},
		{"canceled", wrap(context.Canceled), "connection failed", context.Canceled},
		{"eof", wrap(io.ErrUnexpectedEOF), "connection failed", io.ErrUnexpectedEOF},
		{"bare", io.EOF, "connection failed", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := TransportError(tt.err)
			var de *delivery.Error
			if !errors.As(err, &de) {
				t.Fatalf("TransportError = %#v, want a *delivery.Error", err)
			}
			if de.Permanent || de.Misconfigured {
				t.Errorf("Permanent = %v, Misconfigured = %v, want transient", de.Permanent, de.Misconfigured)
			}
			if de.Reason != tt.reason {
				t.Errorf("Reason = %q, want %q", de.Reason, tt.reason)
			}
			if !errors.Is(err, tt.cause) {
				t.Errorf("error %v does not wrap %v", err, tt.cause)
			}
			var ue *url.Error
			if errors.As(err, &ue) || strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "gateway.example") {
				t.Errorf("error %q still holds the URL", err)
			}
		})
	}
}

func TestParseAbsoluteAndSecureScheme(t *testing.T) {
	tests := []struct {
		raw      string
		absolute bool
		secure   bool
	}{
		{"https://api.example.com", true, true},
		{"https://api.example.com:8443/v1/hook?x=1", true, true},
		{"HTTPS://api.example.com", true, true}, // url.Parse lowers the scheme
		{"http://localhost:8080/hook", true, true},
		{"http://LOCALHOST/hook", true, true},
		{"http://127.0.0.1:9000", true, true},
		{"http://127.8.9.10", true, true},
		{"http://[::1]:9000/hook", true, true},
		{"http://api.example.com", true, false},
		{"http://10.0.0.1", true, false},
		{"http://[::2]", true, false},
		{"http://localhost.example.com", true, false},
		{"http://127.0.0.1.example.com", true, false},
		{"ftp://localhost/file", true, false},
		{"ws://localhost/socket", true, false},
		{"", false, false},
		{"/relative/path", false, false},
		{"api.example.com/hook", false, false},
		{"https://", false, false},
		{"https:///path", false, false},
		{"mailto:ops@example.com", false, false},
		{"https:opaque", false, false},
		{"https://bad host", false, false},
		{"://missing-scheme", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			u, ok := ParseAbsolute(tt.raw)
			if ok != tt.absolute {
				t.Fatalf("ParseAbsolute(%q) ok = %v, want %v", tt.raw, ok, tt.absolute)
			}
			if !ok {
				if u != nil {
					t.Errorf("ParseAbsolute(%q) = %v with ok false, want nil", tt.raw, u)
				}
				return
			}
			if got := SecureScheme(u); got != tt.secure {
				t.Errorf("SecureScheme(%q) = %v, want %v", tt.raw, got, tt.secure)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	tests := map[string]bool{
		"localhost":        true,
		"LocalHost":        true,
		"127.0.0.1":        true,
		"127.255.255.254":  true,
		"::1":              true,
		"::ffff:127.0.0.1": true,
		"":                 false,
		"[::1]":            false, // a Hostname, not a Host: no brackets
		"128.0.0.1":        false,
		"0.0.0.0":          false,
		"::":               false,
		"example.com":      false,
		"localhost.":       false,
		"127.0.0.1:80":     false,
	}
	for host, want := range tests {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestNewClientRefusesRedirects(t *testing.T) {
	var followed bool
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed = true })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := NewClient(5 * time.Second)
	if client.Timeout != 5*time.Second {
		t.Errorf("Timeout = %v, want 5s", client.Timeout)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/start", strings.NewReader("passcode"))
	req.SetBasicAuth("account", "token")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	DrainAndClose(resp.Body)
	if followed {
		t.Error("the redirect was followed")
	}
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("status = %d, want 307", resp.StatusCode)
	}
	if !delivery.IsMisconfigured(StatusError(resp, time.Now(), nil)) {
		t.Error("a refused redirect is not a configuration fault")
	}
}

// countingBody counts what is read of it and whether it was closed.
type countingBody struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { b.closed = true; return nil }

func TestDrainAndClose(t *testing.T) {
	for _, size := range []int{0, 100, ReadLimit, 10 * ReadLimit} {
		body := &countingBody{r: strings.NewReader(strings.Repeat("x", size))}
		DrainAndClose(body)
		if want := min(size, ReadLimit); body.read != want {
			t.Errorf("size %d: read %d bytes, want %d", size, body.read, want)
		}
		if !body.closed {
			t.Errorf("size %d: body not closed", size)
		}
	}
}
