package apptest

import (
	"bytes"
	"sync"
)

// LogBuffer collects log output for assertions. Loggers write from the
// server's goroutines, so unlike a bare bytes.Buffer it is safe for
// concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
