package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// benchReport is what one run measured; --json prints it as it is.
type benchReport struct {
	URL         string  `json:"url"`
	Env         string  `json:"environment"`
	Flow        string  `json:"flow"`
	DeviceType  string  `json:"type"`
	StopAfter   string  `json:"stopAfter"`
	Concurrency int     `json:"concurrency"`
	TargetRate  float64 `json:"targetRate"` // enrollments/s; 0: as fast as possible
	Elapsed     float64 `json:"elapsedSeconds"`
	// Enrollments completed (up to --stop-after) and failed, counting only
	// those begun after the warm-up.
	Enrollments int64 `json:"enrollments"`
	Failed      int64 `json:"failed"`
	// Missed counts scheduled enrollments (--rate) never begun: the workers
	// could not keep up. Non-zero means the offered load was not delivered.
	Missed            int64            `json:"missed"`
	Requests          int64            `json:"requests"`
	EnrollmentsPerSec float64          `json:"enrollmentsPerSec"`
	RequestsPerSec    float64          `json:"requestsPerSec"`
	Errors            map[string]int64 `json:"errors"` // "action status CODE" -> count
	Latency           []latencyStats   `json:"latency"`
	// LoadgenCPU is the CPU time the generator itself used over Wall, the
	// whole run including the warm-up: on a machine it shares with the
	// server, what it takes is not available to the server.
	LoadgenCPU float64 `json:"loadgenCpuSeconds"`
	Wall       float64 `json:"wallSeconds"`
}

// latencyStats summarises one row of samples, in milliseconds. Quantiles
// are exact (nearest rank over all samples sorted).
type latencyStats struct {
	Name  string  `json:"name"`
	Count int     `json:"count"`
	Mean  float64 `json:"meanMs"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

func (g *loadgen) report(stats []*workerStats, elapsed time.Duration) *benchReport {
	r := &benchReport{
		URL: g.o.url, Env: g.o.env, Flow: g.o.flow, DeviceType: g.o.deviceType, StopAfter: g.o.stopAfter,
		Concurrency: g.o.concurrency, TargetRate: g.o.rate, Elapsed: elapsed.Seconds(),
		Missed: g.missed.Load(), Errors: map[string]int64{},
	}
	var rows [nRows][]time.Duration
	for _, ws := range stats {
		r.Enrollments += ws.done
		r.Failed += ws.failed
		r.Requests += ws.requests
		for k, n := range ws.errors {
			r.Errors[k] += n
		}
		for i := range rows {
			rows[i] = append(rows[i], ws.lat[i]...)
		}
	}
	if s := elapsed.Seconds(); s > 0 {
		r.EnrollmentsPerSec = float64(r.Enrollments) / s
		r.RequestsPerSec = float64(r.Requests) / s
	}
	for i, samples := range rows {
		if i > g.lastAction && i <= rowActivate {
			continue
		}
		if len(samples) == 0 && (i == rowPasscode || i == rowLag) {
			continue
		}
		r.Latency = append(r.Latency, summarize(rowNames[i], samples))
	}
	return r
}

func summarize(name string, samples []time.Duration) latencyStats {
	s := latencyStats{Name: name, Count: len(samples)}
	if len(samples) == 0 {
		return s
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	s.Mean = ms(sum / time.Duration(len(samples)))
	s.P50 = ms(quantile(samples, 0.50))
	s.P95 = ms(quantile(samples, 0.95))
	s.P99 = ms(quantile(samples, 0.99))
	s.Max = ms(samples[len(samples)-1])
	return s
}

// quantile is the nearest-rank q-quantile of sorted samples.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q*float64(len(sorted)) + 0.999999999)
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (r *benchReport) writeText(w io.Writer) {
	mode := "as fast as possible"
	if r.TargetRate > 0 {
		mode = fmt.Sprintf("target %.0f/s, open loop", r.TargetRate)
	}
	what := "enrollments"
	if r.StopAfter != actionActivate {
		what = "enrollments (to " + r.StopAfter + ")"
	}
	fmt.Fprintf(w, "%s %s, concurrency %d, %s, %.2fs measured\n", r.DeviceType, what, r.Concurrency, mode, r.Elapsed)
	fmt.Fprintf(w, "  enrollments  %d completed, %d failed: %.1f/s\n", r.Enrollments, r.Failed, r.EnrollmentsPerSec)
	fmt.Fprintf(w, "  requests     %d: %.1f/s\n", r.Requests, r.RequestsPerSec)
	if r.TargetRate > 0 {
		fmt.Fprintf(w, "  missed       %d scheduled enrollments never began\n", r.Missed)
	}
	if len(r.Errors) == 0 {
		fmt.Fprintf(w, "  errors       none\n")
	} else {
		fmt.Fprintf(w, "  errors\n")
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, "    %8d  %s\n", r.Errors[k], k)
		}
	}
	fmt.Fprintf(w, "  %-16s %8s %9s %9s %9s %9s %9s\n", "latency (ms)", "count", "p50", "p95", "p99", "max", "mean")
	for _, l := range r.Latency {
		fmt.Fprintf(w, "  %-16s %8d %9.3f %9.3f %9.3f %9.3f %9.3f\n", l.Name, l.Count, l.P50, l.P95, l.P99, l.Max, l.Mean)
	}
	if r.LoadgenCPU > 0 && r.Wall > 0 {
		fmt.Fprintf(w, "  load generator used %.2f CPU seconds in %.2fs (%.2f cores)\n", r.LoadgenCPU, r.Wall, r.LoadgenCPU/r.Wall)
	}
	if r.TargetRate > 0 {
		fmt.Fprintf(w, "  (enrollment is measured from its scheduled start; schedule.lag is how late it began)\n")
	}
}
