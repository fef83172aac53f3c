// Command enrollflow serves MFA device enrollment flows over a HAL+JSON
// API (`serve`), drives load against a running server (`bench`) and plays
// the authenticator app that pairs a phone (`pair`).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `enrollflow: MFA device enrollment flows over a HAL+JSON API.

Usage:
  enrollflow serve [flags]   run the service (enrollflow serve --help for flags)
  enrollflow bench [flags]   drive full enrollments against a running server
  enrollflow pair [flags] CODE_OR_URI
                             play the authenticator app: pair a phone (enrollflow pair --help)
  enrollflow version         print the version, commit and Go version (also --version)
`

// Exit statuses: 0 done, 1 the command failed, 2 it was called wrongly.
const (
	exitFailed = 1
	exitUsage  = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is main without the process: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:])
	case "bench":
		err = bench(args[1:])
	case "pair":
		err = pair(args[1:], stdout)
	case "version", "--version", "-version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "enrollflow: version: unexpected arguments %q\n", args[1:])
			return exitUsage
		}
		printVersion(stdout)
		return 0
	case "-h", "--help", "-help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "enrollflow: unknown command %q\n\n%s", args[0], usage)
		return exitUsage
	}
	var usageErr *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usageErr):
		fmt.Fprintln(stderr, "enrollflow:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "enrollflow:", err)
		return exitFailed
	}
}

// usageError is a command called wrongly, a bad flag or argument: exit
// status 2, as the go command and the flag package do.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
