package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/enrollflow/enrollflow/metrics"
)

// version and commit are stamped by `make build`
// (-ldflags "-X main.version=... -X main.commit=..."). Without them the
// module version and VCS revision that the go command records are used.
var version, commit string

// buildInfo is what this binary is: its version, commit and Go version.
func buildInfo() metrics.Build {
	b := metrics.Build{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" {
			b.Version = bi.Main.Version
		}
		if b.Commit == "" {
			var revision, modified string
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					revision = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if revision != "" && modified == "true" {
				revision += "-dirty"
			}
			b.Commit = revision
		}
	}
	if b.Version == "" {
		b.Version = "(devel)"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

func printVersion(out io.Writer) {
	b := buildInfo()
	fmt.Fprintf(out, "enrollflow %s\ncommit %s\n%s %s/%s\n", b.Version, b.Commit, b.GoVersion, runtime.GOOS, runtime.GOARCH)
}
