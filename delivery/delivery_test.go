package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/delivery"
)

func readOutbox(t *testing.T, dir string) (msgs map[string]delivery.Message, others []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	msgs = map[string]delivery.Message{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			others = append(others, e.Name())
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var m delivery.Message
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s is not a message: %v\n%s", e.Name(), err, data)
		}
		msgs[e.Name()] = m
	}
	return msgs, others
}

func TestOutboxWritesOneFilePerMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nested", "outbox")
	var logs bytes.Buffer // read only after every send has returned
	ob, err := delivery.NewOutbox(dir, zerolog.New(zerolog.SyncWriter(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	if ob.Dir() != dir {
		t.Fatalf("Dir = %q", ob.Dir())
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("outbox dir: %v %v (must not be readable by others)", fi.Mode(), err)
	}
	const otp = "493817"
	msg := delivery.Message{
		ID: "0123456789abcdef", EnvID: "env1", Method: delivery.Email, Recipient: "jane@example.com", Locale: "en-GB",
		Subject:  "Your verification code",
		Body:     "Use this code: " + otp + "\n\nIf you did not ask for it, ignore this message.",
		HTMLBody: "<p>Use this code: <b>" + otp + "</b></p>",
	}
	if err := ob.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	msgs, others := readOutbox(t, dir)
	if len(others) != 0 {
		t.Fatalf("leftover files: %v", others)
	}
	if len(msgs) != 1 {
		t.Fatalf("%d files, want 1", len(msgs))
	}
	for name, got := range msgs {
		if got != msg {
			t.Fatalf("file %s = %+v, want %+v", name, got, msg)
		}
		if got.Recipient != "jane@example.com" || got.Method != delivery.Email || got.Subject == "" || !strings.Contains(got.Body, otp) {
			t.Fatalf("message = %+v", got)
		}
		if !strings.Contains(name, "-email-") {
			t.Errorf("file name %q does not name the channel", name)
		}
		fi, _ := os.Stat(filepath.Join(dir, name))
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("message file mode %v is readable by others", fi.Mode())
		}
		// The JSON uses the documented names.
		raw, _ := os.ReadFile(filepath.Join(dir, name))
		var fields map[string]any
		_ = json.Unmarshal(raw, &fields)
		for _, k := range []string{"id", "environmentId", "channel", "recipient", "locale", "subject", "body", "htmlBody"} {
			if _, ok := fields[k]; !ok {
				t.Errorf("file lacks %q: %s", k, raw)
			}
		}
	}
	log := logs.String()
	if !strings.Contains(log, "message written to outbox") || !strings.Contains(log, `"channel":"EMAIL"`) {
		t.Fatalf("log = %q", log)
	}
	if strings.Contains(log, otp) || strings.Contains(log, "jane@example.com") {
		t.Fatalf("the log line reveals the passcode or recipient: %q", log)
	}
}

func TestOutboxConcurrentSends(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer // read only after every send has returned
	ob, err := delivery.NewOutbox(dir, zerolog.New(zerolog.SyncWriter(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	methods := []delivery.Method{delivery.Email, delivery.SMS, delivery.Voice}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			otp := "9" + strings.Repeat(string(rune('0'+i%10)), 5)
			m := delivery.Message{EnvID: "env1", Method: methods[i%3], Recipient: "+12015554567", Locale: "en",
				Body: "Your verification code is " + otp + "."}
			errs <- ob.Send(context.Background(), m)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	msgs, others := readOutbox(t, dir)
	if len(msgs) != n || len(others) != 0 {
		t.Fatalf("%d messages and leftovers %v, want %d and none", len(msgs), others, n)
	}
	if lines := strings.Count(logs.String(), "\n"); lines != n {
		t.Fatalf("%d log lines, want %d", lines, n)
	}
}

func TestOutboxErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := delivery.NewOutbox(filepath.Join(file, "sub"), zerolog.Nop()); err == nil {
		t.Fatal("NewOutbox under a file succeeded")
	}
	dir := t.TempDir()
	ob, err := delivery.NewOutbox(dir, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := ob.Send(context.Background(), delivery.Message{Method: delivery.SMS, Body: "x"}); err == nil || !strings.HasPrefix(err.Error(), "outbox:") {
		t.Fatalf("Send into a removed directory = %v", err)
	}
}
