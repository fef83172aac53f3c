package main

import "errors"

// bench is implemented in loadgen.go.
func bench(args []string) error { return errors.New("bench: not built yet") }
