package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/profiled/profiled/internal/api"
	"github.com/profiled/profiled/sink"
)

// minAPITokenBytes keeps a guessable token ("secret", "changeme") from
// guarding personal data; `openssl rand -hex 32` gives 64.
const minAPITokenBytes = 16

// validateAPI checks the read API settings: it is off unless given an
// address, and never runs without a token.
func (c *config) validateAPI() error {
	switch {
	case c.APIAddr == "":
		return nil
	case c.APIToken == "":
		return named("api-token", errors.New("required with PROFILED_API_ADDR: the read API serves personal data and never runs without a token"))
	case len(c.APIToken) < minAPITokenBytes:
		return named("api-token", fmt.Errorf("too short: use at least %d characters (e.g. openssl rand -hex 32)", minAPITokenBytes))
	case c.APIAddr == c.HTTPAddr:
		return named("api-addr", errors.New("must differ from PROFILED_HTTP_ADDR: the read API has its own listener"))
	}
	return nil
}

// startAPI serves the read API on its own listener when it is configured,
// and returns the function that stops it and waits for it. The API has its
// own listener so that it can be bound to another interface than the
// metrics and probes, and put behind its own network policy.
func startAPI(cfg *config, rdb redis.UniversalClient, log zerolog.Logger) (stop func(), err error) {
	if cfg.APIAddr == "" {
		return func() {}, nil
	}
	prefix := cfg.Sink.KeyPrefix
	h, err := api.New(api.Config{Token: cfg.APIToken, Timeout: cfg.Redis.Timeout},
		func(ctx context.Context, id string) (sink.Found, error) {
			return sink.Read(ctx, rdb, prefix, id)
		}, log)
	if err != nil {
		return nil, named("api-token", err)
	}
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, named("api-addr", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.Redis.Timeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("read API server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("serving the read API: /v1/profiles/{id} and /profiles/{id}")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			_ = srv.Close()
		}
		<-done
	}, nil
}
