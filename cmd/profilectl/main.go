// Command profilectl is profiled's command-line tool: it produces events to
// Kafka the way pipelines key them, and reads profiles from Redis.
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

	"github.com/redis/go-redis/v9"

	"github.com/profiled/profiled/internal/feed"
	"github.com/profiled/profiled/internal/view"
	"github.com/profiled/profiled/profile"
	"github.com/profiled/profiled/sink"
)

const usage = `Usage:
  profilectl produce [--brokers B] [--topic T] [FILE]   JSON lines from FILE or stdin to a topic,
                                                      keyed by userId, else anonymousId
  profilectl get [--redis-url U] [--prefix P] [--json] ID
                                                      print the profile card of ID (a user id,
                                                      or anon:<anonymous id>); --json for programs
  profilectl export [--format parquet|csv|jsonl] [--out FILE] [--fields a,b,c]
                    [--where FIELD=VALUE]... [--active-since 7d|DATE] [--acquired-since 7d|DATE]
                    [--redis-url U | --redis-cluster-addrs A] [--prefix P] [--batch N]
                                                      every profile (or those that match) to a file
  profilectl count [the filters and Redis flags of export]
                                                      print the number of profiles that match

Settings default to PROFILED_KAFKA_BROKERS, PROFILED_KAFKA_TOPICS (first topic),
PROFILED_REDIS_URL, PROFILED_REDIS_CLUSTER_ADDRS and PROFILED_REDIS_KEY_PREFIX.
Exit status: 0 done, 1 failed (e.g. Redis unreachable), 2 bad arguments.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	tuneGC(os.Getenv)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout)
	stop()
	var ue usageError
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "profilectl:", err)
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "profilectl:", err)
		os.Exit(1)
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// errNotFound is returned by get for an unknown profile id.
var errNotFound = errors.New("profile not found")

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"a command is required"}
	}
	switch args[0] {
	case "produce":
		fs := flag.NewFlagSet("produce", flag.ContinueOnError)
		brokers := fs.String("brokers", getenv("PROFILED_KAFKA_BROKERS"), "Kafka brokers, comma-separated")
		topic := fs.String("topic", orDefault(strings.Split(getenv("PROFILED_KAFKA_TOPICS"), ",")[0], "events"), "topic")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *brokers == "" {
			return usageError{"--brokers or PROFILED_KAFKA_BROKERS is required"}
		}
		in := stdin
		if fs.NArg() > 0 && fs.Arg(0) != "-" {
			f, err := os.Open(fs.Arg(0))
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
		w := feed.NewWriter(strings.Split(*brokers, ","), *topic, nil)
		n, err := feed.Lines(ctx, w, in)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		fmt.Fprintf(stdout, "produced %d records to %s\n", n, *topic)
		return err
	case "get":
		fs := flag.NewFlagSet("get", flag.ContinueOnError)
		url := fs.String("redis-url", orDefault(getenv("PROFILED_REDIS_URL"), "redis://127.0.0.1:6379/0"), "Redis URL")
		prefix := fs.String("prefix", getenv("PROFILED_REDIS_KEY_PREFIX"), "key prefix")
		asJSON := fs.Bool("json", false, "print the profile's fields and its age as JSON")
		ids, err := parseInterspersed(fs, args[1:])
		if err != nil {
			return err
		}
		if len(ids) != 1 {
			return usageError{"get takes exactly one profile id"}
		}
		opts, err := redis.ParseURL(*url)
		if err != nil {
			return errors.New("--redis-url: not a valid Redis URL") // never echo the URL: it may hold a password
		}
		id := ids[0]
		if why := profile.ValidateProfileID(id); why != nil {
			// quoted: such an id may hold bytes a terminal should not get
			return fmt.Errorf("%w: %q cannot be a profile id: %v", errNotFound, id, why)
		}
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		found, err := sink.Read(ctx, rdb, *prefix, id)
		var linked *sink.LinkedError
		if errors.As(err, &linked) {
			return fmt.Errorf("%w: %s", errNotFound, linked.Error())
		}
		if errors.Is(err, sink.ErrNotFound) {
			return fmt.Errorf("%w: %s", errNotFound, id)
		}
		if err != nil {
			return err
		}
		card := view.NewLinked(found.ID, found.Fields, found.LinkedFrom, found.AnonymousIDs, time.Now())
		if *asJSON {
			b, err := json.MarshalIndent(card, "", "  ")
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		_, err = io.WriteString(stdout, card.Text())
		return err
	case "export", "count":
		return runExport(ctx, args[0], args[1:], getenv, stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// parseInterspersed parses flags that come before or after the
// positional arguments ("get u-1 --json" as well as "get --json u-1"),
// as people type them; "--" ends the flags, so an id may start with "-".
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
