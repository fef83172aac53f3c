//go:build linux

package main

import (
	"encoding/binary"
	"os"
	"strings"
	"syscall"
)

// startNotify watches the outbox with inotify: the server's outbox writes a
// temporary dot file and renames it into place (IN_MOVED_TO); a writer that
// writes in place is seen when it closes the file (IN_CLOSE_WRITE).
func (o *outboxIndex) startNotify() error {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return err
	}
	if _, err := syscall.InotifyAddWatch(fd, o.dir, syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		_ = syscall.Close(fd)
		return err
	}
	// A non-blocking descriptor goes to the runtime poller, so Read parks
	// the goroutine and Close wakes it.
	f := os.NewFile(uintptr(fd), "inotify:"+o.dir)
	o.closers = append(o.closers, f.Close)
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		buf := make([]byte, 256<<10)
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= n; {
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				nameAt := off + syscall.SizeofInotifyEvent
				off = nameAt + nameLen
				if off > n {
					break
				}
				if mask&syscall.IN_Q_OVERFLOW != 0 {
					o.rescan() // events were dropped: look at the directory itself
					continue
				}
				o.ingest(strings.TrimRight(string(buf[nameAt:off]), "\x00"))
			}
		}
	}()
	return nil
}
