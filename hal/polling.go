package hal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/enrollflow/enrollflow/engine"
)

// Polling an execution. Every execution response carries a strong ETag
// made of the version and a hash of the body, so that it changes with
// every version and with what changes by itself (a pairing key that
// expired); If-None-Match answers 304. A client that wants to hear of a
// change at once long-polls: Prefer: wait=N (RFC 7240, 1 to 30 seconds)
// holds the request until the execution is written on any node (the
// store's change notifications), its view changes by itself, or N seconds
// pass, and says Preference-Applied. Without wait, polls are paced per
// execution, long ones too: RecommendedPollInterval, with a burst; a
// client polling much faster gets 429 with Retry-After, as RFC 8628's
// slow_down. A long poll that waits costs one unit per wait (30 s at
// most), so pacing bounds the waiters one execution can hold as well.

// RecommendedPollInterval is the documented interval of a plain poll.
const RecommendedPollInterval = 2 * time.Second

// MaxWait is the longest Prefer: wait a poll is held for.
const MaxWait = 30 * time.Second

// defaultPollBurst polls may come at once; then one per second is let
// through, twice the recommended rate.
const defaultPollBurst = 10

func (s *Server) pollPace() (int, time.Duration) {
	burst := s.cfg.PollBurst
	if burst <= 0 {
		burst = defaultPollBurst
	}
	return burst, time.Duration(burst) * time.Second
}

// writeExecution renders an execution with its ETag.
func (s *Server) writeExecution(w http.ResponseWriter, r *http.Request, env *engine.Environment, x *engine.Execution, status int) {
	body, etag, _, err := s.executionBody(r, env, x)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("ETag", etag)
	writeRaw(w, status, halJSON, body)
}

// executionBody is the encoded body, its ETag and the view it shows.
func (s *Server) executionBody(r *http.Request, env *engine.Environment, x *engine.Execution) ([]byte, string, engine.View, error) {
	m, view, err := s.renderExecution(r, env, x)
	if err != nil {
		return nil, "", view, err
	}
	// One allocation of a size most states fit in, not a series of
	// doublings (the body is kept whole for its hash).
	buf := bytes.NewBuffer(make([]byte, 0, 4096))
	if err := json.NewEncoder(buf).Encode(m); err != nil {
		return nil, "", view, engine.AsError(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return buf.Bytes(), `"` + strconv.FormatInt(x.Version, 10) + "-" + hex.EncodeToString(sum[:8]) + `"`, view, nil
}

// getExecution: GET /{envID}/flowExecutions/{id}, the client's poll.
func (s *Server) getExecution(w http.ResponseWriter, r *http.Request) {
	env, ok := s.environment(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	id := s.executionID(r)
	wait, waiting := preferWait(r.Header)
	// Every poll is paced, a long one too: one answered at once (a stale
	// If-None-Match) is a plain poll by another name. The pace costs a
	// round trip of its own: run it beside the read.
	paced := make(chan error, 1)
	burst, period := s.pollPace()
	go func() { paced <- s.cfg.Regulator.Pace(ctx, pollName(env.ID, id), burst, period) }()
	if waiting {
		// Listen before reading, so that a write between the read and the
		// wait is not missed.
		changed, cancel := s.cfg.Store.WatchExecution(env.ID, id)
		defer cancel()
		s.longPoll(w, r, env, id, wait, changed, paced)
		return
	}
	body, etag, _, err := s.readExecution(r, env, id, paced)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.answerPoll(w, r, body, etag)
}

// readExecution reads and renders the execution, once the poll's pace
// (nil: none) has let it through.
func (s *Server) readExecution(r *http.Request, env *engine.Environment, id string, paced <-chan error) ([]byte, string, engine.View, error) {
	x, err := s.cfg.Runner.Get(r.Context(), env, id)
	if paced != nil {
		if perr := <-paced; perr != nil {
			return nil, "", engine.View{}, perr
		}
	}
	if err != nil {
		return nil, "", engine.View{}, err
	}
	return s.executionBody(r, env, x)
}

// longPoll answers once the execution differs from what the client has
// (its If-None-Match, else what it is now), or when wait is over.
func (s *Server) longPoll(w http.ResponseWriter, r *http.Request, env *engine.Environment, id string, wait time.Duration, changed <-chan struct{}, paced <-chan error) {
	ctx := r.Context()
	body, etag, view, err := s.readExecution(r, env, id, paced)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.cfg.Observer.Waiting(1)
	defer s.cfg.Observer.Waiting(-1)
	w.Header().Set("Preference-Applied", "wait="+strconv.Itoa(int(wait/time.Second)))
	known := r.Header.Get("If-None-Match")
	if known != "" && !etagMatches(known, etag) {
		s.cfg.Observer.LongPolled("changed")
		s.answerPoll(w, r, body, etag) // the client is behind already
		return
	}
	reference := etag
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		var selfChange <-chan time.Time
		if !view.ChangesAt.IsZero() {
			t := time.NewTimer(view.ChangesAt.Sub(s.cfg.Runner.Now()) + 10*time.Millisecond)
			defer t.Stop()
			selfChange = t.C
		}
		result := "changed"
		select {
		case <-changed:
		case <-selfChange:
			result = "expired"
		case <-deadline.C:
			s.cfg.Observer.LongPolled("timeout")
			s.answerPoll(w, r, body, etag)
			return
		case <-ctx.Done():
			s.cfg.Observer.LongPolled("canceled")
			return
		}
		if body, etag, view, err = s.readExecution(r, env, id, nil); err != nil {
			s.writeError(w, r, err)
			return
		}
		if etag != reference {
			s.cfg.Observer.LongPolled(result)
			s.answerPoll(w, r, body, etag)
			return
		}
	}
}

// answerPoll writes the execution, or 304 when the client has it.
func (s *Server) answerPoll(w http.ResponseWriter, r *http.Request, body []byte, etag string) {
	w.Header().Set("ETag", etag)
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeRaw(w, http.StatusOK, halJSON, body)
}

// preferWait reads Prefer: wait=N (RFC 7240); N outside 1 to 30 is
// clamped, a malformed one ignored.
func preferWait(h http.Header) (time.Duration, bool) {
	for _, v := range h.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			name, val, ok := strings.Cut(strings.TrimSpace(pref), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(name), "wait") {
				continue
			}
			n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(val), `"`))
			if err != nil || n < 0 {
				return 0, false
			}
			d := time.Duration(n) * time.Second
			return min(max(d, time.Second), MaxWait), true
		}
	}
	return 0, false
}

// etagMatches is If-None-Match's weak comparison over a list (or *).
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// pollName names an execution's poll budget without its id (which drives
// the execution).
func pollName(envID, id string) string {
	sum := sha256.Sum256([]byte(envID + "\x00" + id))
	return hex.EncodeToString(sum[:12])
}
