package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/enrollflow/enrollflow/cmd/enrollflow/app"
	"github.com/enrollflow/enrollflow/cmd/enrollflow/config"
	"github.com/enrollflow/enrollflow/delivery"
	"github.com/enrollflow/enrollflow/hal"
	"github.com/enrollflow/enrollflow/metrics"
	"github.com/enrollflow/enrollflow/store"
	"github.com/enrollflow/enrollflow/store/memory"
	"github.com/enrollflow/enrollflow/store/redis"
)

// serveOptions are serve's flags; each has an ENROLLFLOW_* equivalent.
type serveOptions struct {
	listen, redisURL, configPath, outbox, logLevel, logFormat, publicURL, corsOrigins string
	metricsListen, tlsCert, tlsKey, tlsClientCA                                       string
	ttl, deliveryWait, deliveryTimeout                                                time.Duration
	rateLimit                                                                         float64
	trustedProxies                                                                    []netip.Prefix
}

// shutdownGrace bounds how long a graceful shutdown waits for requests in
// flight; deliveries in flight then get up to --delivery-timeout more.
const shutdownGrace = 20 * time.Second

const serveUsage = `Usage: enrollflow serve [flags]

Runs the service: the HAL+JSON flow API, the management API, /healthz,
/readyz, /metrics and /openapi.json. Every flag has an ENROLLFLOW_*
environment variable; secrets come only from the environment
(ENROLLFLOW_SECRET, ENROLLFLOW_API_KEY).

SIGINT or SIGTERM shuts down gracefully (at most 20 s for requests in flight,
then up to --delivery-timeout for passcodes on their way); a second one exits
at once. SIGHUP reloads the TLS certificate and key.

Flags:
`

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func parseServeFlags(args []string) (serveOptions, error) {
	var o serveOptions
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveUsage)
		fs.PrintDefaults()
	}
	if wantsHelp(args) {
		fs.SetOutput(os.Stdout) // asked for: it is the output, not an error
	}
	fs.StringVar(&o.listen, "listen", envOr("ENROLLFLOW_LISTEN", "127.0.0.1:8080"), "address to listen on (ENROLLFLOW_LISTEN)")
	fs.StringVar(&o.redisURL, "redis-url", envOr("ENROLLFLOW_REDIS_URL", ""), "redis://host:port/db, or a comma-separated list of cluster nodes; empty: the memory store (ENROLLFLOW_REDIS_URL)")
	fs.StringVar(&o.configPath, "config", envOr("ENROLLFLOW_CONFIG", ""), "configuration file (YAML or JSON); empty: the built-in demo environment (ENROLLFLOW_CONFIG)")
	fs.StringVar(&o.outbox, "outbox", envOr("ENROLLFLOW_OUTBOX", filepath.Join(os.TempDir(), "enrollflow-outbox")), "directory the development channel writes messages to (ENROLLFLOW_OUTBOX)")
	fs.StringVar(&o.logLevel, "log-level", envOr("ENROLLFLOW_LOG_LEVEL", "info"), "debug, info, warn or error (ENROLLFLOW_LOG_LEVEL)")
	fs.StringVar(&o.logFormat, "log-format", envOr("ENROLLFLOW_LOG_FORMAT", ""), "json or console; default console on a terminal, else json (ENROLLFLOW_LOG_FORMAT)")
	fs.StringVar(&o.publicURL, "public-url", envOr("ENROLLFLOW_PUBLIC_URL", ""), "base URL for links, e.g. https://mfa.example.com; empty: from each request's Host (ENROLLFLOW_PUBLIC_URL)")
	fs.StringVar(&o.corsOrigins, "cors-origins", envOr("ENROLLFLOW_CORS_ORIGINS", ""), "comma-separated browser origins allowed to call the API, e.g. https://app.example.com; empty: none (ENROLLFLOW_CORS_ORIGINS)")
	ttl, err := time.ParseDuration(envOr("ENROLLFLOW_EXECUTION_TTL", "15m"))
	if err != nil {
		return o, fmt.Errorf("ENROLLFLOW_EXECUTION_TTL: %w", err)
	}
	fs.DurationVar(&o.ttl, "execution-ttl", ttl, "inactivity expiry of a flow execution (ENROLLFLOW_EXECUTION_TTL)")
	if err := durationFlag(fs, &o.deliveryWait, "delivery-wait", "ENROLLFLOW_DELIVERY_WAIT", "3s",
		"longest a request waits for its passcode to reach the provider; a slower delivery goes on in the background and a failure shows on the next poll (ENROLLFLOW_DELIVERY_WAIT)"); err != nil {
		return o, err
	}
	if err := durationFlag(fs, &o.deliveryTimeout, "delivery-timeout", "ENROLLFLOW_DELIVERY_TIMEOUT", "30s",
		"longest one passcode delivery may take, retries included (ENROLLFLOW_DELIVERY_TIMEOUT)"); err != nil {
		return o, err
	}
	rl, err := strconv.ParseFloat(envOr("ENROLLFLOW_RATE_LIMIT", "20"), 64)
	if err != nil {
		return o, fmt.Errorf("ENROLLFLOW_RATE_LIMIT: %w", err)
	}
	fs.Float64Var(&o.rateLimit, "rate-limit", rl, "requests per second per client address on /{envID}/flowExecutions; 0 disables (ENROLLFLOW_RATE_LIMIT)")
	var proxies string
	fs.StringVar(&proxies, "trusted-proxies", envOr("ENROLLFLOW_TRUSTED_PROXIES", ""), "comma-separated addresses or CIDRs of the load balancers in front, whose X-Forwarded-For names the client for the rate limit; empty: none (ENROLLFLOW_TRUSTED_PROXIES)")
	fs.StringVar(&o.metricsListen, "metrics-listen", envOr("ENROLLFLOW_METRICS_LISTEN", ""), "serve /metrics on this address instead of --listen, e.g. 127.0.0.1:9090 (ENROLLFLOW_METRICS_LISTEN)")
	fs.StringVar(&o.tlsCert, "tls-cert", envOr("ENROLLFLOW_TLS_CERT", ""), "PEM certificate chain: serve HTTPS (with --tls-key; SIGHUP reloads both) (ENROLLFLOW_TLS_CERT)")
	fs.StringVar(&o.tlsKey, "tls-key", envOr("ENROLLFLOW_TLS_KEY", ""), "PEM private key of --tls-cert (ENROLLFLOW_TLS_KEY)")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", envOr("ENROLLFLOW_TLS_CLIENT_CA", ""), "PEM CA certificates: ask for client certificates, verify them, and require one on the management API and /metrics (ENROLLFLOW_TLS_CLIENT_CA)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("serve: unexpected arguments %q (flags only; see enrollflow serve --help)", fs.Args())
	}
	switch {
	case (o.tlsCert == "") != (o.tlsKey == ""):
		return o, errors.New("--tls-cert and --tls-key go together")
	case o.tlsClientCA != "" && o.tlsCert == "":
		return o, errors.New("--tls-client-ca needs --tls-cert and --tls-key: client certificates are verified in the TLS handshake")
	}
	for _, item := range splitList(proxies) {
		p, err := netip.ParsePrefix(item)
		if err != nil {
			a, aerr := netip.ParseAddr(item)
			if aerr != nil {
				return o, fmt.Errorf("--trusted-proxies: %q is neither an IP address nor a CIDR such as 10.0.0.0/8", item)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		o.trustedProxies = append(o.trustedProxies, p.Masked())
	}
	if o.ttl < time.Minute || o.ttl > 24*time.Hour {
		return o, fmt.Errorf("--execution-ttl: must be between 1m and 24h")
	}
	if o.deliveryWait < 100*time.Millisecond || o.deliveryWait > 20*time.Second {
		return o, fmt.Errorf("--delivery-wait: must be between 100ms and 20s")
	}
	if o.deliveryTimeout < time.Second || o.deliveryTimeout > 10*time.Minute {
		return o, fmt.Errorf("--delivery-timeout: must be between 1s and 10m")
	}
	if o.rateLimit < 0 {
		return o, fmt.Errorf("--rate-limit: must not be negative")
	}
	return o, nil
}

func newLogger(level, format string, out io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("--log-level: must be debug, info, warn or error")
	}
	if format == "" {
		format = "json"
		if f, ok := out.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			format = "console"
		}
	}
	switch format {
	case "json":
	case "console":
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format: must be json or console")
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "--h":
			return true
		}
	}
	return false
}

func serve(args []string) error {
	o, err := parseServeFlags(args)
	if err != nil {
		return &usageError{err}
	}
	// The first SIGINT or SIGTERM starts a graceful shutdown; a second one
	// means "now": an operator who has waited long enough, or a supervisor
	// that escalated.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "enrollflow: second signal: exiting without waiting for requests and deliveries in flight")
		os.Exit(1)
	}()
	return runServe(ctx, o, os.Stdout, os.Stderr, nil)
}

// runServe serves until ctx ends, then shuts down gracefully. ready, when
// set, learns the listening address (tests listen on port 0).
func runServe(ctx context.Context, o serveOptions, stdout, stderr io.Writer, ready func(addr string)) error {
	log, err := newLogger(o.logLevel, o.logFormat, stderr)
	if err != nil {
		return err
	}

	// Configuration: the file, or the demo environment with its key.
	var file config.File
	generatedKey := ""
	if o.configPath != "" {
		if file, err = config.Load(o.configPath); err != nil {
			return err
		}
	} else {
		key := os.Getenv("ENROLLFLOW_API_KEY")
		if key == "" {
			key = config.RandomToken(24)
			generatedKey = key
		}
		file = config.Demo(key)
		if o.publicURL != "" {
			config.DemoServedAt(&file, o.publicURL)
		}
	}

	// Secrets: every node of a deployment must share them.
	var master []byte
	if s := os.Getenv("ENROLLFLOW_SECRET"); s != "" {
		if master, err = config.ParseSecret(s); err != nil {
			return fmt.Errorf("ENROLLFLOW_SECRET: %w", err)
		}
	} else if o.redisURL != "" {
		return fmt.Errorf("ENROLLFLOW_SECRET is required with --redis-url: every node must hash passcodes and seal TOTP seeds with the same key (generate one: openssl rand -base64 32)")
	} else {
		master = []byte(config.RandomToken(32))
		log.Warn().Msg("ENROLLFLOW_SECRET not set: using a random secret for this process (fine with the memory store, which forgets everything on exit too)")
	}
	var st store.Store
	if o.redisURL != "" {
		redis.RouteLogs(log)
		rs, err := redis.Open(o.redisURL, nil)
		if err != nil {
			return fmt.Errorf("--redis-url: %w", err)
		}
		st = rs
	} else {
		st = memory.New(nil)
	}
	defer st.Close()

	outbox, err := delivery.NewOutbox(o.outbox, log)
	if err != nil {
		return fmt.Errorf("--outbox: %w", err)
	}
	build := buildInfo()
	m := metrics.New(build)
	node, err := app.Build(app.Options{
		Config: file, Store: st, Secret: master, TTL: o.ttl, Log: log, Outbox: outbox,
		DeliveryWait: o.deliveryWait, DeliveryBudget: o.deliveryTimeout, Metrics: m,
	})
	if err != nil {
		return err
	}

	api := hal.Config{Runner: node.Runner, Dispatcher: node.Dispatcher, Registry: node.Registry, Regulator: node.Regulator, Store: node.Store,
		Mobile: node.Mobile, Applications: node.Applications, Log: log, BaseURL: o.publicURL, RateLimit: o.rateLimit,
		CORSOrigins: splitList(o.corsOrigins), TrustedProxies: o.trustedProxies, Observer: m, RequireClientCert: o.tlsClientCA != ""}
	if o.metricsListen == "" {
		api.Metrics = m.Handler()
	}
	srv := newHTTPServer(hal.New(api), log)
	scheme := "http"
	if o.tlsCert != "" {
		cert, err := loadCertificate(o.tlsCert, o.tlsKey)
		if err != nil {
			return err
		}
		if srv.TLSConfig, err = serverTLS(cert, o.tlsClientCA); err != nil {
			return err
		}
		stopReloads := reloadOnSIGHUP(cert, log)
		defer stopReloads()
		scheme = "https"
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	if o.metricsListen != "" {
		msrv, mln, err := metricsServer(o, m, srv.TLSConfig, log)
		if err != nil {
			ln.Close()
			return err
		}
		servers = append(servers, msrv)
		go func() { errc <- serveOn(msrv, mln) }()
	} else if !isLoopback(ln.Addr()) && o.tlsClientCA == "" {
		log.Warn().Msg("/metrics is served without authentication on a non-loopback address; " +
			"use --metrics-listen on an internal address, or --tls-client-ca")
	}
	storeName := "memory"
	if o.redisURL != "" {
		storeName = "redis"
	}
	log.Info().Str("listen", ln.Addr().String()).Str("scheme", scheme).Str("store", storeName).Str("outbox", outbox.Dir()).
		Str("version", build.Version).Msg("enrollflow serving")
	if o.configPath == "" {
		printDemoBanner(stdout, scheme+"://"+ln.Addr().String(), generatedKey, outbox.Dir())
	}
	if ready != nil {
		ready(ln.Addr().String())
	}

	go func() { errc <- serveOn(srv, ln) }()
	var serveErr error
	select {
	case serveErr = <-errc:
		log.Error().Err(serveErr).Msg("a listener failed; shutting down")
	case <-ctx.Done():
		log.Info().Msg("shutting down: finishing requests in flight")
	}
	shutdown(servers, log)
	// Passcodes still on their way were promised to users: let them go out,
	// for as long as one delivery may take, whatever happened above.
	deliveriesCtx, cancelDeliveries := context.WithTimeout(context.Background(), o.deliveryTimeout)
	defer cancelDeliveries()
	if err := node.Runner.Wait(deliveriesCtx); err != nil {
		log.Warn().Msg("shutting down with passcode deliveries still in flight")
	}
	return serveErr
}

// serveOn serves srv on ln (over TLS when srv has a TLS configuration)
// until it is shut down.
func serveOn(srv *http.Server, ln net.Listener) error {
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// shutdown stops every server at once, each waiting at most shutdownGrace
// for its requests in flight; a server that does not finish in time is
// closed and logged, not returned, so that deliveries still get their wait.
func shutdown(servers []*http.Server, log zerolog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil {
				log.Warn().Err(err).Msg("requests still in flight after the shutdown grace; closing their connections")
				_ = s.Close()
			}
		}()
	}
	wg.Wait()
}

// metricsServer is the --metrics-listen listener: /metrics only, with the
// main listener's TLS when it has one; with a client CA, the handshake
// itself requires a client certificate (nothing on this listener is for a
// browser).
func metricsServer(o serveOptions, m *metrics.Metrics, mainTLS *tls.Config, log zerolog.Logger) (*http.Server, net.Listener, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	msrv := newHTTPServer(mux, log)
	if mainTLS != nil {
		msrv.TLSConfig = mainTLS.Clone()
		if o.tlsClientCA != "" {
			msrv.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	mln, err := net.Listen("tcp", o.metricsListen)
	if err != nil {
		return nil, nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	if mainTLS == nil && !isLoopback(mln.Addr()) {
		log.Warn().Msg("--metrics-listen is a non-loopback address without TLS: /metrics is open to whoever reaches it")
	}
	log.Info().Str("listen", mln.Addr().String()).Bool("tls", mainTLS != nil).Msg("metrics serving")
	return msrv, mln, nil
}

func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// newHTTPServer is an http.Server with the timeouts every listener needs
// against slow clients, whose own errors (TLS handshakes that failed,
// plain HTTP sent to the TLS port) go to the log as sampled JSON lines.
func newHTTPServer(h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: hal.MaxWait + 30*time.Second, IdleTimeout: 2 * time.Minute,
		MaxHeaderBytes: 16 << 10,
		ErrorLog:       stdlog.New(serverErrorLog(log), "", 0),
	}
}

// serverErrorLog turns net/http's own error lines into warnings without
// the client's address, at most 10 a minute: any client can cause them (a
// failed handshake), so they must not flood the log.
func serverErrorLog(log zerolog.Logger) io.Writer {
	sampled := log.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
	return writerFunc(func(p []byte) (int, error) {
		msg := strings.TrimSpace(string(p))
		msg = peerAddress.ReplaceAllString(msg, "from a client")
		sampled.Warn().Str("http_server", msg).Msg("http server error")
		return len(p), nil
	})
}

// peerAddress is "from <host>:<port>" in net/http's error lines.
var peerAddress = regexp.MustCompile(`from \S+:\d+`)

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// reloadOnSIGHUP reloads the certificate on every SIGHUP until the
// returned function is called. A pair that fails to load is logged and the
// one in use stays.
func reloadOnSIGHUP(cert *certificate, log zerolog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if err := cert.reload(); err != nil {
					log.Error().Err(err).Msg("TLS certificate reload failed; keeping the one in use")
				} else {
					log.Info().Msg("TLS certificate reloaded")
				}
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done) }
}

// durationFlag defines a duration flag whose default comes from an
// environment variable.
func durationFlag(fs *flag.FlagSet, dst *time.Duration, name, envName, def, usage string) error {
	d, err := time.ParseDuration(envOr(envName, def))
	if err != nil {
		return fmt.Errorf("%s: %w", envName, err)
	}
	fs.DurationVar(dst, name, d, usage)
	return nil
}

// printDemoBanner tells a person on a fresh machine how to begin. The key
// is printed only when this process generated it.
func printDemoBanner(out io.Writer, base, generatedKey, outbox string) {
	key := "$ENROLLFLOW_API_KEY"
	if generatedKey != "" {
		key = generatedKey
		fmt.Fprintf(out, "\nAPI key of environment %q (generated, shown once): %s\n", config.DemoEnvironmentID, generatedKey)
	}
	fmt.Fprintf(out, `
Start an enrollment:
  curl -s -X POST %s/%s/flowExecutions \
    -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' \
    -d '{"flow":{"id":"%s"},"inputs":{"user":{"id":"user-1","email":"jane@example.com"}}}'
Passcodes are written to %s

`, base, config.DemoEnvironmentID, key, config.DemoFlowID, outbox)
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
