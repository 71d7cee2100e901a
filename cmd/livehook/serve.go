package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/livehook/livehook/engine"
	"github.com/livehook/livehook/engine/store"
	"github.com/livehook/livehook/internal/admin"
	"github.com/livehook/livehook/internal/console"
	"github.com/livehook/livehook/internal/intake"
	"github.com/livehook/livehook/internal/watch"
)

// serveConfig is everything `livehook serve` takes.
type serveConfig struct {
	rules           string
	listen          string
	admin           string
	logFormat       string
	logLevel        string
	shutdownTimeout time.Duration
	data            string
	store           string // a PostgreSQL DSN, or "" for the embedded store in data
	retention       time.Duration
	fileDedupe      time.Duration
	statusDedupe    time.Duration
	watch           bool
	noConsole       bool // --console=false
	plugins         string
	stateTolerance  time.Duration
	stateMaxKeys    int
	zone            string
	hardening       hardeningConfig // limits, TLS, admin token: see hardening.go
}

func serveCmd(ctx context.Context, args []string, stderr io.Writer, getenv func(string) (string, bool)) error {
	c, err := parseServe(args, stderr, getenv)
	if err != nil {
		return err
	}
	logger, err := newLogger(stderr, c.logFormat, c.logLevel)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	d, err := newDaemon(c, logger)
	if err != nil {
		return err
	}
	return d.serve(ctx)
}

// parseServe reads serve's flags and LIVEHOOK_* variables into a checked
// configuration.
func parseServe(args []string, stderr io.Writer, getenv func(string) (string, bool)) (serveConfig, error) {
	var c serveConfig
	fs := newFlagSet("serve", "serve [flags]", stderr)
	fs.StringVar(&c.rules, "rules", "rules.yaml", "rules `PATH`: a YAML file, or a directory whose *.yaml/*.yml files load in name order (env LIVEHOOK_RULES)")
	fs.StringVar(&c.listen, "listen", ":8080", "`ADDR` for callbacks: POST /callbacks/record and /events/{source} (env LIVEHOOK_LISTEN)")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:9090", "`ADDR` for /healthz, /readyz, /metrics, /-/reload, the /api/ endpoints (rules, events, dead letters) and the console (env LIVEHOOK_ADMIN)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log `FORMAT`: text or json (env LIVEHOOK_LOG_FORMAT)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log `LEVEL`: debug, info, warn or error (env LIVEHOOK_LOG_LEVEL)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM, how long accepted events may be evaluated and in-flight deliveries finish; the rest stay pending for the next start (env LIVEHOOK_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&c.data, "data", "./data", "`DIR` for the durable store: accepted events, deliveries, dead letters (env LIVEHOOK_DATA)")
	fs.StringVar(&c.store, "store", "", storeFlagUsage)
	fs.DurationVar(&c.retention, "retention", engine.DefaultRetention, "finished events and their deliveries are deleted after this; dead letters are kept until replayed (env LIVEHOOK_RETENTION)")
	fs.DurationVar(&c.fileDedupe, "dedupe-file-window", engine.DefaultFileDedupe, "a retried file-generated callback (same domain, app, stream, uri), or a generic event with the same webhook-id, within this window is processed once (env LIVEHOOK_DEDUPE_FILE_WINDOW)")
	fs.DurationVar(&c.statusDedupe, "dedupe-status-window", engine.DefaultStatusDedupe, "a retried status callback (same body and ALI-LIVE-TIMESTAMP) within this window is processed once (env LIVEHOOK_DEDUPE_STATUS_WINDOW)")
	fs.DurationVar(&c.stateTolerance, "state-outage-tolerance", engine.DefaultStateOutageTolerance, "a timer of a rule over time that came due while livehook was down fires on start (marked late) if at most this overdue; otherwise it is discarded and counted (env LIVEHOOK_STATE_OUTAGE_TOLERANCE)")
	fs.IntVar(&c.stateMaxKeys, "state-max-keys", engine.DefaultStateMaxKeys, "keys all rules over time keep state for, at most; past it the least recently used key without a timer is evicted (env LIVEHOOK_STATE_MAX_KEYS)")
	fs.StringVar(&c.zone, "tz", "Local", "the time `ZONE` digest buckets align to, as an IANA name such as Asia/Shanghai (env LIVEHOOK_TZ)")
	fs.BoolVar(&c.watch, "watch", true, "reload the rules when their files change; SIGHUP and POST /-/reload work either way (env LIVEHOOK_WATCH)")
	fs.BoolFunc("console", "serve the web console at / on the admin listener (default true; env LIVEHOOK_CONSOLE)", func(v string) error {
		on, err := strconv.ParseBool(v)
		c.noConsole = !on
		return err
	})
	pluginsFlag(fs, &c.plugins, getenv)
	c.hardening.flags(fs)
	if err := parse(fs, args, getenv); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, &exitError{code: 2, msg: fmt.Sprintf("serve: unexpected argument %q", fs.Arg(0))}
	}
	if _, err := time.LoadLocation(c.zone); err != nil {
		return c, &exitError{code: 2, msg: fmt.Sprintf("serve: --tz %q: %v", c.zone, err)}
	}
	if c.stateTolerance <= 0 || c.stateMaxKeys <= 0 {
		return c, &exitError{code: 2, msg: "serve: --state-outage-tolerance and --state-max-keys must be positive"}
	}
	return c, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// daemon is a running livehook: the engine and its two listeners.
type daemon struct {
	cfg      serveConfig
	log      *slog.Logger
	engine   *engine.Engine
	public   net.Listener
	admin    net.Listener
	registry *prometheus.Registry
	store    store.Store
	hard     *hardening
	ready    chan struct{}
}

// newDaemon loads the rules and binds both listeners, so a bad rules file
// or a taken port fails before anything is served.
func newDaemon(c serveConfig, logger *slog.Logger) (*daemon, error) {
	hard, err := c.hardening.prepare(c.admin, logger)
	if err != nil {
		return nil, &exitError{code: 2, msg: "serve: " + err.Error()}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	zone, err := time.LoadLocation(c.zone)
	if err != nil {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("serve: --tz %q: %v", c.zone, err)}
	}
	st, err := openStore(c, reg)
	if err != nil {
		return nil, err
	}
	eng, err := engine.New(engine.Options{
		RulesPath: c.rules, Store: st, Logger: logger, Metrics: reg,
		Registry:  pluginRegistry(c.plugins),
		Retention: c.retention, FileDedupe: c.fileDedupe, StatusDedupe: c.statusDedupe,
		StateOutageTolerance: c.stateTolerance, StateMaxKeys: c.stateMaxKeys, Zone: zone,
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	d := &daemon{cfg: c, log: logger, engine: eng, registry: reg, store: st, hard: hard, ready: make(chan struct{})}
	if d.public, err = net.Listen("tcp", c.listen); err != nil {
		st.Close()
		return nil, fmt.Errorf("listen %s: %w", c.listen, err)
	}
	d.public = hard.listener(d.public)
	if d.admin, err = net.Listen("tcp", c.admin); err != nil {
		d.public.Close()
		st.Close()
		return nil, fmt.Errorf("admin listen %s: %w", c.admin, err)
	}
	return d, nil
}

// serve runs until ctx ends, then shuts down in order: stop taking
// callbacks, let accepted events finish, close the admin listener.
func (d *daemon) serve(ctx context.Context) error {
	defer d.store.Close()
	con, err := d.console()
	if err != nil {
		d.public.Close()
		d.admin.Close()
		return err
	}
	if err := d.engine.Start(); err != nil {
		d.public.Close()
		d.admin.Close()
		return err
	}
	publicSrv := &http.Server{
		Handler: intake.New(intake.Options{Acceptor: d.engine, Logger: d.log, Metrics: d.registry,
			Policies: d.engine, MaxBody: int64(d.hard.cfg.maxBody), Limits: d.hard.intakeLimits()}),
		// Slow clients must not hold connections open (see hardening.go).
		ReadHeaderTimeout: d.hard.cfg.readHeaderTimeout,
		ReadTimeout:       d.hard.cfg.readTimeout,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	storeReady := storeReady(d.store)
	sw := d.newSweeper()
	adminSrv := &http.Server{
		Handler: d.hard.adminHandler(admin.New(admin.Options{
			Reloader: d.engine,
			Rules:    func() any { return d.engine.Report() },
			Ready:    func() bool { return ctx.Err() == nil && storeReady() },
			Gatherer: d.registry,
			Events:   d.engine,
			State: func(rule, key string, limit int) (any, error) {
				return d.engine.State(rule, key, limit)
			},
			Reconcile: reconcileFunc(ctx, sw),
			Console:   con,
			ReadOnly:  d.hard.cfg.adminReadOnly,
			Logger:    d.log,
		})),
		ReadHeaderTimeout: 5 * time.Second,
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				d.log.Info("SIGHUP: reloading rules")
				_ = d.engine.Reload() // a failed reload logs every problem and keeps the old rules
			case <-watchCtx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(3)
	go func() { defer wg.Done(); errc <- serveHTTP(publicSrv, d.public) }()
	go func() { defer wg.Done(); errc <- serveHTTP(adminSrv, d.admin) }()
	wg.Go(func() { sw.Run(ctx) })   // sweeps when sweeper: sets an interval
	watching := make(chan struct{}) // closed once the watch is in place, or will never be
	go func() {
		defer wg.Done()
		if !d.cfg.watch {
			close(watching)
			return
		}
		started := func() {
			// The rules loaded before the watch began: look once more, so
			// an edit made in between is not missed.
			_ = d.engine.Reload()
			close(watching)
		}
		err := watch.Watch(watchCtx, d.cfg.rules, watch.Options{Logger: d.log, Started: started}, func() {
			_ = d.engine.Reload() // a failed reload logs every problem and keeps the old rules
		})
		if err != nil {
			d.log.Warn("hot reload is off: cannot watch the rules; SIGHUP and POST /-/reload still work", "err", err)
			close(watching)
		}
	}()
	<-watching
	d.hard.warnUnsigned(d.log, d.engine)
	d.log.Info("livehook serving", "version", versionString(), "listen", d.public.Addr().String(),
		"admin", d.admin.Addr().String(), "rules", d.cfg.rules, "store", storeName(d.cfg))
	close(d.ready)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	d.log.Info("shutting down", "timeout", d.cfg.shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), d.cfg.shutdownTimeout)
	defer cancel()
	_ = publicSrv.Shutdown(shutdownCtx) // stop taking callbacks first
	if err := d.engine.Stop(shutdownCtx); err != nil {
		d.log.Warn("shutdown: not everything finished", "err", err)
	}
	_ = adminSrv.Shutdown(shutdownCtx)
	stopWatch()
	wg.Wait()
	return runErr
}

func serveHTTP(srv *http.Server, l net.Listener) error {
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", l.Addr(), err)
	}
	return nil
}

// console is the web console the admin listener serves at /; nil with
// --console=false.
func (d *daemon) console() (http.Handler, error) {
	if d.cfg.noConsole {
		return nil, nil
	}
	started := time.Now()
	return console.New(console.Options{
		Events:     d.engine,
		Dead:       d.engine,
		Playground: d.engine,
		Rules:      d.engine.Report,
		State:      d.engine.State,
		Status: func(ctx context.Context) (console.Status, error) {
			st, err := d.engine.Status(ctx)
			if err != nil {
				return console.Status{}, err
			}
			return console.Status{Version: versionString(), Started: started, Store: storeName(d.cfg), Stats: st.Stats,
				OldestPending: st.OldestPending}, nil
		},
		ReadOnly: d.hard.cfg.adminReadOnly,
		Logger:   d.log,
	})
}
