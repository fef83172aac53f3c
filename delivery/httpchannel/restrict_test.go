package httpchannel

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery"
)

func TestAllowedAddr(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1":              false,
		"127.1.2.3":              false,
		"::1":                    false,
		"::ffff:127.0.0.1":       false, // IPv4-mapped loopback
		"169.254.169.254":        false, // cloud metadata
		"169.254.0.1":            false,
		"::ffff:169.254.169.254": false,
		"fe80::1":                false,
		"fe80::1%eth0":           false,
		"febf::1":                false, // still fe80::/10
		"fd00:ec2::254":          false, // EC2's IPv6 metadata address
		"0.0.0.0":                false,
		"0.1.2.3":                false,
		"::":                     false,
		"::ffff:0.0.0.0":         false,
		"224.0.0.1":              false, // link-local multicast
		"ff02::1":                false,
		"ff01::1":                false, // interface-local multicast
		"8.8.8.8":                true,
		"10.0.0.1":               true, // a relay on the private network is the operator's choice
		"192.168.1.10":           true,
		"172.16.0.1":             true,
		"100.100.100.200":        true,
		"169.253.255.255":        true,
		"169.255.0.1":            true,
		"128.0.0.1":              true,
		"2001:db8::1":            true,
		"fd00::2":                true,
		"fec0::1":                true,
		"::ffff:8.8.8.8":         true,
	}
	for raw, want := range tests {
		addr := netip.MustParseAddr(raw)
		if got := AllowedAddr(addr); got != want {
			t.Errorf("AllowedAddr(%s) = %v, want %v", raw, got, want)
		}
	}
	if AllowedAddr(netip.Addr{}) {
		t.Error("AllowedAddr(zero Addr) = true")
	}
}

func TestAllowedHost(t *testing.T) {
	tests := map[string]bool{
		"localhost":          false,
		"LOCALHOST":          false,
		"localhost.":         false,
		"mail.localhost":     false,
		"127.0.0.1":          false,
		"::1":                false,
		"::ffff:127.0.0.1":   false,
		"169.254.169.254":    false,
		"fe80::1":            false,
		"0.0.0.0":            false,
		"::":                 false,
		"api.twilio.com":     true,
		"smtp.example.org":   true,
		"localhost.example":  true,
		"notlocalhost":       true,
		"10.1.2.3":           true,
		"2001:db8::25":       true,
		"gw.example.test":    true,
		"169.254.example.io": true,
	}
	for host, want := range tests {
		if got := AllowedHost(host); got != want {
			t.Errorf("AllowedHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestTransportErrorDestinationNotAllowed(t *testing.T) {
	const secretURL = "https://gateway.example/hook?token=s3cr3t"
	cause := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(169, 254, 169, 254), Port: 443},
		Err: ErrDestinationNotAllowed}
	err := TransportError(&url.Error{Op: "Post", URL: secretURL, Err: cause})
	if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "destination not allowed" {
		t.Fatalf("TransportError = %v, want misconfigured destination not allowed", err)
	}
	if !errors.Is(err, ErrDestinationNotAllowed) {
		t.Errorf("error %v does not wrap ErrDestinationNotAllowed", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "gateway.example") {
		t.Errorf("error %q still holds the URL", err)
	}
}

func TestRestrictedControlRefusesWhatIsNotAnIPAddress(t *testing.T) {
	for _, address := range []string{"/run/relay.sock", "example.com:25", ""} {
		if err := restrictedControl(context.Background(), "tcp", address, nil); !errors.Is(err, ErrDestinationNotAllowed) {
			t.Errorf("restrictedControl(%q) = %v, want ErrDestinationNotAllowed", address, err)
		}
	}
	if err := restrictedControl(context.Background(), "tcp4", "192.0.2.10:443", nil); err != nil {
		t.Errorf("restrictedControl(192.0.2.10:443) = %v, want nil", err)
	}
}

// countingServer is an httptest server on addr ("127.0.0.1:0" and so on)
// that counts the requests it gets; it is nil when addr cannot be
// listened on.
func countingServer(t *testing.T, addr string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &hits
}

func post(client *http.Client, target string) error {
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader("passcode"))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return TransportError(err)
	}
	DrainAndClose(resp.Body)
	return StatusError(resp, time.Now(), nil)
}

func TestRestrictedClientRefusesThisMachine(t *testing.T) {
	srv, hits := countingServer(t, "127.0.0.1:0")
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	targets := []string{
		srv.URL,
		"http://localhost:" + port + "/hook", // a name that resolves to loopback
		"http://[::ffff:127.0.0.1]:" + port + "/hook",
		"http://127.9.9.9:" + port + "/hook",
		"http://0.0.0.0:" + port + "/hook", // reaches this machine when dialled
	}
	if srv6, _ := countingServer(t, "[::1]:0"); srv6 != nil {
		targets = append(targets, srv6.URL)
	}
	restricted := NewClient(2*time.Second, RestrictDestinations())
	for _, target := range targets {
		err := post(restricted, target)
		if !delivery.IsMisconfigured(err) || delivery.ReasonOf(err) != "destination not allowed" {
			t.Errorf("%s: err = %v, want misconfigured destination not allowed", target, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d requests reached this machine", n)
	}
	// The same server is reachable without the restriction.
	if err := post(NewClient(2*time.Second), srv.URL); err != nil {
		t.Fatalf("unrestricted client: %v", err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

// externalAddr is an address of this machine's that is neither loopback
// nor link-local, or the zero Addr when it has none.
func externalAddr() netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err == nil && prefix.Addr().Is4() && AllowedAddr(prefix.Addr()) {
			return prefix.Addr()
		}
	}
	return netip.Addr{}
}

func TestRestrictedClientReachesOtherAddresses(t *testing.T) {
	addr := externalAddr()
	if !addr.IsValid() {
		t.Skip("this machine has no address but loopback and link-local ones")
	}
	srv, hits := countingServer(t, netip.AddrPortFrom(addr, 0).String())
	if srv == nil {
		t.Skipf("cannot listen on %s", addr)
	}
	if err := post(NewClient(2*time.Second, RestrictDestinations()), srv.URL); err != nil {
		t.Fatalf("restricted client to %s: %v", srv.URL, err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestRestrictedClientTransport(t *testing.T) {
	client := NewClient(3*time.Second, RestrictDestinations())
	tr, ok := client.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("Transport = %T, want *http.Transport", client.Transport)
	}
	if tr.Proxy != nil {
		t.Error("a restricted client uses a proxy from the environment: the check would be the proxy's address")
	}
	if tr.DialContext == nil || tr.DialTLSContext != nil {
		t.Error("the restricted dialer is not the one used")
	}
	if tr == http.DefaultTransport {
		t.Error("the restricted client shares http.DefaultTransport")
	}
	def := http.DefaultTransport.(*http.Transport)
	if tr.TLSHandshakeTimeout != def.TLSHandshakeTimeout || tr.IdleConnTimeout != def.IdleConnTimeout ||
		tr.MaxIdleConns != def.MaxIdleConns || tr.ForceAttemptHTTP2 != def.ForceAttemptHTTP2 {
		t.Error("the restricted transport does not keep http.DefaultTransport's settings")
	}
	if client.Timeout != 3*time.Second || client.CheckRedirect == nil {
		t.Error("the restricted client lost its timeout or its redirect policy")
	}
	if plain := NewClient(time.Second); plain.Transport != nil {
		t.Errorf("an unrestricted client has Transport %T, want the default", plain.Transport)
	}
}

func TestNewDialer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			_ = c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx := t.Context()
	for _, target := range []string{ln.Addr().String(), net.JoinHostPort("localhost", port)} {
		conn, err := NewDialer(true).DialContext(ctx, "tcp", target)
		if err == nil {
			_ = conn.Close()
			t.Fatalf("restricted dial to %s succeeded", target)
		}
		if !IsDestinationNotAllowed(err) {
			t.Errorf("restricted dial to %s: %v, want ErrDestinationNotAllowed", target, err)
		}
	}
	select {
	case <-accepted:
		t.Fatal("a restricted dial reached the listener")
	case <-time.After(50 * time.Millisecond):
	}
	conn, err := NewDialer(false).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("unrestricted dial: %v", err)
	}
	_ = conn.Close()
	d := NewDialer(false)
	if d.Timeout != 30*time.Second || d.KeepAlive != 30*time.Second || d.ControlContext != nil {
		t.Errorf("NewDialer(false) = %+v", d)
	}
}
