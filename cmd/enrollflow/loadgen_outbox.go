package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// outboxIndex reads EMAIL passcodes from the server's outbox directory. It
// parses each new message file once, as it appears (inotify on Linux, else
// polling while someone waits), and keeps recipient -> passcode, so that a
// worker's look-up costs a map access however many files the directory
// holds. Files already there when the index opens are never parsed: the
// run's recipients are unique, so they cannot be its passcodes.
type outboxIndex struct {
	dir string

	mu      sync.Mutex
	seen    map[string]struct{}    // file names handled (or there before)
	codes   map[string]string      // recipient -> passcode not yet claimed
	waiters map[string]chan string // recipient -> a worker waiting for it

	wake    chan struct{} // the polling watcher: someone waits
	done    chan struct{}
	closers []func() error
	wg      sync.WaitGroup
}

// openOutbox starts watching dir (created if missing, like the server does).
func openOutbox(dir string) (*outboxIndex, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	o := &outboxIndex{dir: dir, seen: map[string]struct{}{}, codes: map[string]string{},
		waiters: map[string]chan string{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	// Watch first, then list: a file landing in between is both listed
	// (and so skipped) and reported, which is harmless before the run.
	if err := o.startNotify(); err != nil {
		o.startPolling()
	}
	names, err := o.list()
	if err != nil {
		o.Close()
		return nil, err
	}
	o.mu.Lock()
	for _, n := range names {
		o.seen[n] = struct{}{}
	}
	o.mu.Unlock()
	return o, nil
}

// Close stops the watcher.
func (o *outboxIndex) Close() {
	select {
	case <-o.done:
		return
	default:
	}
	close(o.done)
	for _, c := range o.closers {
		_ = c()
	}
	o.wg.Wait()
}

// list names the message files in the directory (not the writer's
// temporary dot files), unsorted and without a stat each.
func (o *outboxIndex) list() ([]string, error) {
	f, err := os.Open(o.dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if messageFile(n) {
			out = append(out, n)
		}
	}
	return out, nil
}

func messageFile(name string) bool {
	return !strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".json")
}

// rescan ingests every file not seen yet: the polling watcher's step, and
// the inotify watcher's recovery from a queue overflow.
func (o *outboxIndex) rescan() {
	names, err := o.list()
	if err != nil {
		return
	}
	for _, n := range names {
		o.ingest(n)
	}
}

// ingest parses one message file, once, and files its passcode.
func (o *outboxIndex) ingest(name string) {
	if !messageFile(name) {
		return
	}
	o.mu.Lock()
	if _, ok := o.seen[name]; ok {
		o.mu.Unlock()
		return
	}
	o.seen[name] = struct{}{}
	o.mu.Unlock()

	data, err := os.ReadFile(filepath.Join(o.dir, name))
	var msg struct {
		Recipient string `json:"recipient"`
		Body      string `json:"body"`
	}
	if err == nil {
		err = json.Unmarshal(data, &msg)
	}
	if err != nil {
		// Not complete yet (a writer without rename), or gone: let a later
		// scan try again.
		o.mu.Lock()
		delete(o.seen, name)
		o.mu.Unlock()
		return
	}
	code := findPasscode(msg.Body)
	if code == "" || msg.Recipient == "" {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if ch, ok := o.waiters[msg.Recipient]; ok {
		delete(o.waiters, msg.Recipient)
		ch <- code // buffered
		return
	}
	o.codes[msg.Recipient] = code
}

// findPasscode returns the first run of 6 to 10 digits in a message body.
func findPasscode(body string) string {
	for i := 0; i < len(body); {
		if body[i] < '0' || body[i] > '9' {
			i++
			continue
		}
		j := i
		for j < len(body) && body[j] >= '0' && body[j] <= '9' {
			j++
		}
		if n := j - i; n >= 6 && n <= 10 {
			return body[i:j]
		}
		i = j
	}
	return ""
}

// errNoPasscode: no message for the recipient reached the outbox in time.
var errNoPasscode = errors.New("no passcode in the outbox")

// wait returns the passcode sent to recipient, waiting up to timeout for
// its file. Every 200ms of waiting it rescans the directory, in case the
// watcher missed the file.
func (o *outboxIndex) wait(ctx context.Context, recipient string, timeout time.Duration) (string, error) {
	o.mu.Lock()
	if code, ok := o.codes[recipient]; ok {
		delete(o.codes, recipient)
		o.mu.Unlock()
		return code, nil
	}
	ch := make(chan string, 1)
	o.waiters[recipient] = ch
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	recheck := time.NewTicker(200 * time.Millisecond)
	defer recheck.Stop()
	for {
		select {
		case code := <-ch:
			return code, nil
		case <-recheck.C:
			o.rescan()
		case <-deadline.C:
			return o.giveUp(recipient, ch, fmt.Errorf("%w after %s", errNoPasscode, timeout))
		case <-ctx.Done():
			return o.giveUp(recipient, ch, ctx.Err())
		}
	}
}

func (o *outboxIndex) giveUp(recipient string, ch chan string, err error) (string, error) {
	o.mu.Lock()
	if o.waiters[recipient] == ch {
		delete(o.waiters, recipient)
	}
	o.mu.Unlock()
	select {
	case code := <-ch:
		return code, nil
	default:
		return "", err
	}
}

// startPolling is the portable watcher: while anyone waits, it lists the
// directory every millisecond and parses what is new.
func (o *outboxIndex) startPolling() {
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-o.done:
				return
			case <-o.wake:
			}
			for {
				o.rescan()
				o.mu.Lock()
				waiting := len(o.waiters) > 0
				o.mu.Unlock()
				if !waiting {
					break
				}
				select {
				case <-o.done:
					return
				case <-tick.C:
				}
			}
		}
	}()
}
