package main

// Tests of the built binary as a process: what its command line prints and
// how it exits, TLS with a certificate reloaded on a real SIGHUP, client
// certificates, and a second SIGINT during a graceful shutdown.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/hal/openapitest"
)

const (
	stampedVersion = "v9.8.7-test"
	stampedCommit  = "0123456789abcdef0123456789abcdef01234567"
)

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// builtBinary builds enrollflow once per test run, stamped as `make build`
// stamps it.
func builtBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "enrollflow-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "enrollflow")
		goCmd, err := exec.LookPath("go")
		if err != nil {
			binaryErr = err
			return
		}
		out, err := exec.Command(goCmd, "build", "-ldflags",
			"-X main.version="+stampedVersion+" -X main.commit="+stampedCommit, "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// runBinary runs the binary to its end and returns its exit status and output.
func runBinary(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(builtBinary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, errOut := runBinary(t, arg)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", arg, code, errOut)
		}
		for _, want := range []string{stampedVersion, stampedCommit, runtime.Version()} {
			if !strings.Contains(out, want) {
				t.Errorf("%s printed %q, which lacks %q", arg, out, want)
			}
		}
	}
}

func TestCommandLine(t *testing.T) {
	cases := []struct {
		args       []string
		code       int
		out, inErr string // substrings of stdout and stderr
	}{
		{[]string{"serve", "--help"}, 0, "-tls-cert", ""},
		{[]string{"serve", "-h"}, 0, "-metrics-listen", ""},
		{[]string{"--help"}, 0, "enrollflow version", ""},
		{[]string{"bench", "--help"}, 0, "-concurrency", ""},
		{[]string{"serve", "now", "please"}, 2, "", `unexpected arguments ["now" "please"]`},
		{[]string{"bench", "extra"}, 2, "", `unexpected arguments ["extra"]`},
		{[]string{"version", "extra"}, 2, "", `unexpected arguments ["extra"]`},
		{[]string{"serve", "--no-such-flag"}, 2, "", "no-such-flag"},
		{[]string{"serve", "--tls-cert", "c.pem"}, 2, "", "--tls-cert and --tls-key go together"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{nil, 2, "", "Usage:"},
	}
	for _, c := range cases {
		code, out, errOut := runBinary(t, c.args...)
		if code != c.code {
			t.Errorf("%q: exit %d, want %d\nstdout: %s\nstderr: %s", c.args, code, c.code, out, errOut)
		}
		if !strings.Contains(out, c.out) || !strings.Contains(errOut, c.inErr) {
			t.Errorf("%q: stdout %q should contain %q; stderr %q should contain %q", c.args, out, c.out, errOut, c.inErr)
		}
	}
}

// process is a running `enrollflow serve`.
type process struct {
	cmd   *exec.Cmd
	addr  string
	mu    sync.Mutex
	lines []string // its log, as JSON lines
	// exited is closed when the process has ended, with exitErr its
	// result.
	exited  chan struct{}
	exitErr error
}

// startProcess starts the binary with the demo environment on a free port
// and waits until it listens.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startProcessWith(t, []string{"ENROLLFLOW_SECRET="}, args...)
}

// startProcessWith is startProcess with more environment variables.
func startProcessWith(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(builtBinary(t), append([]string{"serve", "--listen", "127.0.0.1:0", "--log-format", "json",
		"--outbox", t.TempDir()}, args...)...)
	cmd.Env = append(append(os.Environ(), "ENROLLFLOW_API_KEY="+processKey), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.lines = append(p.lines, line)
			p.mu.Unlock()
			var entry struct{ Message, Listen string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "enrollflow serving" {
				listening <- entry.Listen
			}
		}
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case p.addr = <-listening:
	case <-p.exited:
		t.Fatalf("serve exited at start: %v\n%s", p.exitErr, p.log())
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not listen within 20 s\n%s", p.log())
	}
	return p
}

const processKey = "process-test-key-0123456789"

func (p *process) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

// waitLog waits until a log line contains s.
func (p *process) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.log(), s) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no log line with %q:\n%s", s, p.log())
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// pki is a test CA and what it issues.
type pki struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	pem  []byte
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &pki{t: t, cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue makes a leaf certificate: a server's for 127.0.0.1, or a client's.
func (ca *pki) issue(serial int64, client bool) (certPEM, keyPEM []byte, pair tls.Certificate) {
	ca.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		ca.t.Fatal(err)
	}
	return certPEM, keyPEM, pair
}

// writeAtomically replaces a file the way a certificate renewal should:
// a new file renamed over the old one.
func writeAtomically(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// httpsClient trusts ca, presents cert when given, and checks every
// exchange against the OpenAPI document.
func httpsClient(t *testing.T, ca *pki, cert *tls.Certificate) *http.Client {
	t.Helper()
	cfg := &tls.Config{RootCAs: ca.pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	v, err := openapitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: v.Transport(t, &http.Transport{TLSClientConfig: cfg})}
}

func get(t *testing.T, c *http.Client, url string, header ...string) (int, *tls.ConnectionState) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.TLS
}

// rawGet sends one keep-alive request over an open TLS connection.
func rawGet(t *testing.T, conn *tls.Conn, r *bufio.Reader, path string) int {
	t.Helper()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatalf("write on the open connection: %v", err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("read on the open connection: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestTLSReloadOnSIGHUP: HTTPS with the given pair; after the files are
// replaced and SIGHUP is sent, new connections get the new certificate and
// an open connection goes on working; TLS 1.1 is refused.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	ca := newPKI(t, "server CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	certA, keyA, _ := ca.issue(100, false)
	writeAtomically(t, certFile, certA)
	writeAtomically(t, keyFile, keyA)
	p := startProcess(t, "--tls-cert", certFile, "--tls-key", keyFile)
	base := "https://" + p.addr
	client := httpsClient(t, ca, nil)

	status, state := get(t, client, base+"/healthz")
	if status != 200 || state == nil || state.PeerCertificates[0].SerialNumber.Int64() != 100 {
		t.Fatalf("first HTTPS request: %d, state %v", status, state)
	}
	if state.Version < tls.VersionTLS12 {
		t.Errorf("negotiated TLS version %x", state.Version)
	}
	open, err := tls.Dial("tcp", p.addr, &tls.Config{RootCAs: ca.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	openReader := bufio.NewReader(open)
	if rawGet(t, open, openReader, "/healthz") != 200 {
		t.Fatal("the open connection's first request failed")
	}

	certB, keyB, _ := ca.issue(200, false)
	writeAtomically(t, certFile, certB)
	writeAtomically(t, keyFile, keyB)
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "TLS certificate reloaded")

	fresh := httpsClient(t, ca, nil) // a new transport: a new connection
	if status, state := get(t, fresh, base+"/readyz"); status != 200 || state.PeerCertificates[0].SerialNumber.Int64() != 200 {
		t.Fatalf("after SIGHUP a new connection sees serial %d (status %d), want 200", state.PeerCertificates[0].SerialNumber, status)
	}
	if rawGet(t, open, openReader, "/healthz") != 200 {
		t.Fatal("the open connection stopped working after the reload")
	}
	if got := open.ConnectionState().PeerCertificates[0].SerialNumber.Int64(); got != 100 {
		t.Errorf("the open connection's certificate changed to %d", got)
	}

	// A broken pair is refused and the one in use stays.
	writeAtomically(t, keyFile, []byte("not a key"))
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, "TLS certificate reload failed")
	if status, state := get(t, httpsClient(t, ca, nil), base+"/healthz"); status != 200 || state.PeerCertificates[0].SerialNumber.Int64() != 200 {
		t.Fatalf("after a failed reload: %d", status)
	}

	old := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}
	if c, err := tls.Dial("tcp", p.addr, old); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake was accepted")
	}
}

// TestTLSClientCertificates: with a client CA, the management API and
// /metrics refuse a request without a verified client certificate, while a
// browser's routes need none; a certificate from another CA fails the
// handshake.
func TestTLSClientCertificates(t *testing.T) {
	serverCA, clientCA, strangerCA := newPKI(t, "server CA"), newPKI(t, "client CA"), newPKI(t, "stranger CA")
	dir := t.TempDir()
	certPEM, keyPEM, _ := serverCA.issue(1, false)
	certFile, keyFile, caFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), filepath.Join(dir, "clients.pem")
	writeAtomically(t, certFile, certPEM)
	writeAtomically(t, keyFile, keyPEM)
	writeAtomically(t, caFile, clientCA.pem)
	p := startProcess(t, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", caFile)
	base := "https://" + p.addr
	_, _, clientPair := clientCA.issue(7, true)
	withCert, without := httpsClient(t, serverCA, &clientPair), httpsClient(t, serverCA, nil)
	auth := []string{"Authorization", "Bearer " + processKey}

	if status, _ := get(t, without, base+"/environments/demo/flows", auth...); status != http.StatusForbidden {
		t.Errorf("management without a client certificate: %d, want 403", status)
	}
	if status, _ := get(t, without, base+"/metrics"); status != http.StatusForbidden {
		t.Errorf("/metrics without a client certificate: %d, want 403", status)
	}
	if status, _ := get(t, withCert, base+"/environments/demo/flows", auth...); status != http.StatusOK {
		t.Errorf("management with a client certificate: %d, want 200", status)
	}
	if status, _ := get(t, withCert, base+"/environments/demo/flows"); status != http.StatusUnauthorized {
		t.Errorf("a client certificate does not replace the API key: %d, want 401", status)
	}
	if status, _ := get(t, without, base+"/healthz"); status != http.StatusOK {
		t.Errorf("/healthz without a client certificate: %d", status)
	}
	_, _, strangerPair := strangerCA.issue(9, true)
	// Sent even though the server asks for certificates of its CA only.
	presentStranger := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &strangerPair, nil }
	stranger := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: serverCA.pool, GetClientCertificate: presentStranger}}}
	if resp, err := stranger.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a client certificate from an unknown CA was accepted")
	}

	// The metrics listener has the same TLS, and its handshake itself
	// requires a client certificate.
	withListener := startProcess(t, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", caFile, "--metrics-listen", "127.0.0.1:0")
	metricsAddr := withListener.logField(t, "metrics serving", "listen")
	if status, _ := get(t, withCert, "https://"+metricsAddr+"/metrics"); status != http.StatusOK {
		t.Errorf("metrics listener with a client certificate: %d", status)
	}
	plain := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.pool}}}
	if resp, err := plain.Get("https://" + metricsAddr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Errorf("metrics listener without a client certificate: %d, want a refused handshake", resp.StatusCode)
	}
	if resp, err := plain.Get("http://" + metricsAddr + "/metrics"); err == nil && resp.StatusCode == http.StatusOK {
		resp.Body.Close()
		t.Error("the metrics listener answered plain HTTP")
	}
	for _, q := range []*process{p, withListener} {
		if strings.Contains(q.log(), "handshake error from 127") || !strings.Contains(q.log(), `"http_server":"http: TLS handshake error from a client`) {
			t.Errorf("the refused handshakes are not logged as JSON without the client's address:\n%s", q.log())
		}
	}
}

// logField returns a field of the first log line with the given message.
func (p *process) logField(t *testing.T, message, field string) string {
	t.Helper()
	p.waitLog(t, message)
	for _, line := range strings.Split(p.log(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["message"] == message {
			if v, ok := entry[field].(string); ok {
				return v
			}
		}
	}
	t.Fatalf("no %q in a %q log line:\n%s", field, message, p.log())
	return ""
}

// TestSecondSignalExitsAtOnce: a request in flight holds the graceful
// shutdown open; a second SIGINT ends the process at once. One SIGINT with
// nothing in flight ends it cleanly.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	p := startProcess(t)
	conn, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a request: the connection is active, and Shutdown waits for it.
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	p.signal(t, syscall.SIGINT)
	p.waitLog(t, "shutting down")
	select {
	case <-p.exited:
		t.Fatalf("exited (%v) while a request was in flight, before the second signal", p.exitErr)
	case <-time.After(500 * time.Millisecond):
	}
	p.signal(t, syscall.SIGINT)
	select {
	case <-p.exited:
		var exit *exec.ExitError
		if !errors.As(p.exitErr, &exit) || exit.ExitCode() != 1 {
			t.Fatalf("after the second signal: %v, want exit status 1", p.exitErr)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("still running 2 s after the second signal")
	}

	q := startProcess(t)
	q.signal(t, syscall.SIGTERM)
	select {
	case <-q.exited:
		if q.exitErr != nil {
			t.Fatalf("a graceful shutdown with nothing in flight: %v\n%s", q.exitErr, q.log())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a graceful shutdown with nothing in flight took over 5 s")
	}
}
