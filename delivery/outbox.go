package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/store"
)

// Outbox is the development channel: each message becomes one JSON file in
// a directory, where a developer (or a test) reads the passcode.
type Outbox struct {
	dir string
	seq atomic.Int64
	log zerolog.Logger
}

// NewOutbox creates dir if needed.
func NewOutbox(dir string, log zerolog.Logger) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	return &Outbox{dir: dir, log: log}, nil
}

// Dir is where the files go.
func (o *Outbox) Dir() string { return o.dir }

// Send writes the message atomically (temp file, then rename), so a reader
// polling the directory never sees half a message.
func (o *Outbox) Send(_ context.Context, msg Message) error {
	data, err := json.MarshalIndent(msg, "", "  ")
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%06d-%s-%s.json", time.Now().UTC().Format("20060102T150405.000"),
		o.seq.Add(1)%1000000, strings.ToLower(string(msg.Method)), store.NewID()[:8])
	tmp := filepath.Join(o.dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(o.dir, name)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	// The file holds the passcode; the log line must not.
	o.log.Info().Str("channel", string(msg.Method)).Str("file", name).Msg("message written to outbox")
	return nil
}
