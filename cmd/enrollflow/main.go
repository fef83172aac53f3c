// Command enrollflow serves MFA device enrollment flows over a HAL+JSON
// API (`serve`) and drives load against a running server (`bench`).
package main

import (
	"fmt"
	"os"
)

const usage = `enrollflow: MFA device enrollment flows over a HAL+JSON API.

Usage:
  enrollflow serve [flags]   run the service (enrollflow serve -h for flags)
  enrollflow bench [flags]   drive full enrollments against a running server
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "bench":
		err = bench(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "enrollflow: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "enrollflow:", err)
		os.Exit(1)
	}
}
