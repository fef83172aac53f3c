package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// benchOptions are bench's flags.
type benchOptions struct {
	url, env, flow, apiKey, deviceType, outbox, stopAfter, jsonOut string
	concurrency                                                    int
	duration, warmup, timeout                                      time.Duration
	enrollments                                                    int64
	rate                                                           float64
	jsonStdout                                                     bool
	// --waiters mode: long polls instead of enrollments.
	waiters, pairings int
	redisURL          string
}

const benchUsage = `enrollflow bench drives full MFA enrollments (start, device.create,
device.activate) against a running enrollflow server on this machine and
reports throughput and per-action latency. It stops by itself after
--duration or --enrollments.

Start the server with ENROLLFLOW_RATE_LIMIT=0: every request of the load
generator comes from one client address.

Flags:
`

func parseBenchFlags(args []string, stderr io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080", "base URL of the server; loopback addresses only")
	fs.StringVar(&o.env, "env", "demo", "environment id")
	fs.StringVar(&o.flow, "flow", "mfa-enrollment", "flow id")
	fs.StringVar(&o.apiKey, "api-key", os.Getenv("ENROLLFLOW_API_KEY"), "the environment's API key (ENROLLFLOW_API_KEY)")
	fs.StringVar(&o.deviceType, "type", "TOTP", "device type to enroll: TOTP or EMAIL")
	fs.StringVar(&o.outbox, "outbox", "", "the server's --outbox directory, where EMAIL passcodes are read (required with --type EMAIL)")
	fs.IntVar(&o.concurrency, "concurrency", 8, "workers, each running one enrollment at a time")
	fs.DurationVar(&o.duration, "duration", 0, "measure for this long (default 10s unless --enrollments is given)")
	fs.Int64Var(&o.enrollments, "enrollments", 0, "stop after this many enrollments (0: no count limit)")
	fs.Float64Var(&o.rate, "rate", 0, "target enrollments per second, paced open-loop (0: as fast as the workers go)")
	fs.DurationVar(&o.warmup, "warmup", 0, "run this long before measuring (only with --duration)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.StringVar(&o.stopAfter, "stop-after", actionActivate, "last action of each enrollment: start, device.create or device.activate; earlier ones leave executions live (to measure store memory)")
	fs.BoolVar(&o.jsonStdout, "json", false, "print the report as JSON instead of text")
	fs.IntVar(&o.waiters, "waiters", 0, "instead of enrollments: this many clients long-poll executions in PAIRING_REQUIRED while --pairings of them are paired")
	fs.IntVar(&o.pairings, "pairings", 200, "with --waiters: how many of the waiting executions are paired")
	fs.StringVar(&o.redisURL, "redis-url", "", "with --waiters: the server's Redis, to count its connections while the polls wait")
	fs.StringVar(&o.jsonOut, "json-out", "", "also write the JSON report to this file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	o.deviceType = strings.ToUpper(o.deviceType)
	switch {
	case o.apiKey == "":
		return o, errors.New("bench: --api-key (or ENROLLFLOW_API_KEY) is required")
	case o.deviceType != "TOTP" && o.deviceType != "EMAIL":
		return o, fmt.Errorf("bench: --type must be TOTP or EMAIL, not %q", o.deviceType)
	case o.deviceType == "EMAIL" && o.outbox == "" && o.stopAfter == actionActivate:
		return o, errors.New("bench: --type EMAIL needs --outbox, the server's outbox directory, to read passcodes")
	case o.concurrency < 1 || o.concurrency > 4096:
		return o, errors.New("bench: --concurrency must be between 1 and 4096")
	case o.duration < 0 || o.enrollments < 0 || o.rate < 0 || o.warmup < 0:
		return o, errors.New("bench: --duration, --enrollments, --rate and --warmup must not be negative")
	case o.warmup > 0 && o.duration == 0:
		return o, errors.New("bench: --warmup needs --duration")
	case o.timeout <= 0:
		return o, errors.New("bench: --timeout must be positive")
	case o.waiters < 0 || o.waiters > 100_000 || o.pairings < 1:
		return o, errors.New("bench: --waiters must be between 0 and 100000, --pairings at least 1")
	}
	if actionIndex(o.stopAfter) < 0 {
		return o, fmt.Errorf("bench: --stop-after must be %s, %s or %s", actionStart, actionCreate, actionActivate)
	}
	if o.duration == 0 && o.enrollments == 0 {
		o.duration = 10 * time.Second
	}
	// A bounded run: even a count-limited one ends within an hour.
	if o.duration > time.Hour {
		return o, errors.New("bench: --duration must be at most 1h")
	}
	return o, nil
}

// bench runs `enrollflow bench`. It returns an error (exit status 1) when
// any enrollment failed or none completed, after printing the report.
func bench(args []string) error {
	out := os.Stderr
	if wantsHelp(args) {
		out = os.Stdout // asked for: it is the output, not an error
	}
	o, err := parseBenchFlags(args, out)
	if err != nil {
		return &usageError{err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if o.waiters > 0 {
		return benchWaiters(ctx, o)
	}
	if !o.jsonStdout {
		fmt.Fprintf(os.Stderr, "bench: %s enrollments against %s/%s, flow %s, concurrency %d, %s\n",
			o.deviceType, strings.TrimRight(o.url, "/"), o.env, o.flow, o.concurrency, describeBound(o))
	}
	rep, err := runLoad(ctx, o)
	if err != nil {
		return err
	}
	if err := writeReport(o, rep, rep.writeText); err != nil {
		return err
	}
	switch {
	case rep.Failed > 0:
		return fmt.Errorf("bench: %d of %d enrollments failed", rep.Failed, rep.Failed+rep.Enrollments)
	case rep.Enrollments == 0:
		return errors.New("bench: no enrollment completed")
	}
	return nil
}

func describeBound(o benchOptions) string {
	var parts []string
	if o.rate > 0 {
		parts = append(parts, fmt.Sprintf("target %.0f enrollments/s (open loop)", o.rate))
	} else {
		parts = append(parts, "as fast as possible")
	}
	if o.duration > 0 {
		d := o.duration.String()
		if o.warmup > 0 {
			d += " after " + o.warmup.String() + " warm-up"
		}
		parts = append(parts, d)
	}
	if o.enrollments > 0 {
		parts = append(parts, fmt.Sprintf("at most %d enrollments", o.enrollments))
	}
	if o.stopAfter != actionActivate {
		parts = append(parts, "stopping after "+o.stopAfter)
	}
	return strings.Join(parts, ", ")
}

// writeReport writes a report as --json-out and --json ask, else as text.
func writeReport(o benchOptions, rep any, text func(io.Writer)) error {
	if o.jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("bench: --json-out: %w", err)
		}
	}
	if !o.jsonStdout {
		text(os.Stdout)
		return nil
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
