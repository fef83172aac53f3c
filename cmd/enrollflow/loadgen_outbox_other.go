//go:build !linux

package main

import "errors"

// startNotify has no portable implementation; the index polls instead.
func (o *outboxIndex) startNotify() error {
	return errors.New("no directory notification on this platform")
}
