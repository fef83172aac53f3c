package smtptest_test

import (
	"fmt"
	netsmtp "net/smtp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/enrollflow/enrollflow/delivery/smtp/smtptest"
)

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

func TestParseDecodesQuotedPrintableAndBase64Parts(t *testing.T) {
	// A mixed message wrapping an alternative one: the text part is
	// quoted-printable (with a soft line break), the HTML part base64
	// folded over two lines; the attachment is neither text nor HTML.
	m := smtptest.Mail{Data: crlf(`From: a@example.org
To: b@example.org
Subject: =?UTF-8?q?C=C3=B3digo?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

Tu c=C3=B3digo es 493817, =
no lo compartas.
--inner
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: base64

PHA+VHUgY8OzZGlnbyBlcyA8Yj40OTM4
MTc8L2I+LjwvcD4=
--inner--
--outer
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

AAEC
--outer--
`)}
	p, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if p.Header.Get("To") != "b@example.org" || p.Header.Get("Subject") != "=?UTF-8?q?C=C3=B3digo?=" {
		t.Errorf("header = %v", p.Header)
	}
	if want := "Tu código es 493817, no lo compartas."; p.Text != want {
		t.Errorf("Text = %q, want %q", p.Text, want)
	}
	if want := "<p>Tu código es <b>493817</b>.</p>"; p.HTML != want {
		t.Errorf("HTML = %q, want %q", p.HTML, want)
	}
	if got := fmt.Sprint(p.Parts); got != "[text/plain text/html application/octet-stream]" {
		t.Errorf("Parts = %s", got)
	}
}

func TestParseSinglePart(t *testing.T) {
	m := smtptest.Mail{Data: crlf(`Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

VHUgY8OzZGlnbyBlcyA0OTM4MTcu
`)}
	p, err := m.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if p.Text != "Tu código es 493817." || p.HTML != "" || fmt.Sprint(p.Parts) != "[text/plain]" {
		t.Errorf("parsed text %q, html %q, parts %q", p.Text, p.HTML, p.Parts)
	}

	m.Data = crlf("Content-Type: text/plain; charset\n\nx\n")
	if _, err := m.Parse(); err == nil {
		t.Error("a bad Content-Type was parsed")
	}
}

// fatalTB records Fatalf and stops the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitMailTimesOut(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		s.WaitMail(tb, 1, 50*time.Millisecond)
		tb.msg = "WaitMail returned"
	}()
	<-done
	if elapsed := time.Since(start); elapsed < 50*time.Millisecond || elapsed > 5*time.Second {
		t.Errorf("WaitMail gave up after %v with a 50ms timeout", elapsed)
	}
	if want := "smtptest: 0 message(s) arrived within 50ms, want 1"; tb.msg != want {
		t.Errorf("message = %q, want %q", tb.msg, want)
	}
}

func TestWaitMailWakesEveryWaiter(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	type result struct {
		mail  smtptest.Mail
		fatal string
	}
	got := make(chan result, 2)
	for n := 1; n <= 2; n++ {
		go func() {
			// Not t itself: only the test's goroutine may call t.Fatal.
			tb := &fatalTB{TB: t}
			var m smtptest.Mail
			defer func() { got <- result{m, tb.msg} }()
			m = s.WaitMail(tb, n, 5*time.Second)
		}()
	}
	for _, to := range []string{"one@example.org", "two@example.org"} {
		err := netsmtp.SendMail(fmt.Sprintf("127.0.0.1:%d", s.Port), nil, "a@example.org", []string{to},
			crlf("Subject: hi\n\nhello\n"))
		if err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range 2 {
		r := <-got
		if r.fatal != "" {
			t.Fatal(r.fatal)
		}
		seen[r.mail.To[0]] = true
	}
	if !seen["one@example.org"] || !seen["two@example.org"] {
		t.Fatalf("waiters got %v", seen)
	}
}
