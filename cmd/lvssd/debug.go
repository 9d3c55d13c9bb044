package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/lvss/lvss/internal/config"
	"github.com/lvss/lvss/internal/metrics"
)

// serveDebug serves Go's profiles under /debug/pprof/ on [debug] listen
// until ctx ends; it returns at once when the endpoint is off. The
// handlers are put on a mux of their own (net/http/pprof's init
// registers them on http.DefaultServeMux, which nothing in lvssd
// serves), so that turning profiling on exposes nothing else.
func serveDebug(ctx context.Context, d config.Debug, log *slog.Logger) (stop func(), err error) {
	network, address := d.Address()
	if network == "" {
		return func() {}, nil
	}
	// Profiles name every function and goroutine of lvssd: a Unix socket
	// is for its owner (root) alone.
	l, err := metrics.ListenAs("debug endpoint", network, address, "", 0o600)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("debug endpoint stopped", "error", err)
		}
	}()
	log.Warn("profiling endpoint listening ([debug] listen): turn it off when done", "network", network, "address", l.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		srv.Close()
		<-done
		if network == "unix" {
			_ = os.Remove(address)
		}
	}, nil
}
