package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// soakOptions configure the soak: one durable roomlogd, Rooms × Subs
// sockets, Rate publishes/s for Duration.
type soakOptions struct {
	Duration   time.Duration
	Rooms      int
	Subs, Rate int
}

// defaultSoakDuration outlasts the first Engine.IO heartbeat with the
// default settings (a PING after 25 s, closed 20 s later if unanswered):
// the 5 s cells of the scenarios ended before it, and hid a race that
// closed answering clients at 45 s (transport/socketio/heartbeat.go).
const defaultSoakDuration = 60 * time.Second

func runSoakCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	var o soakOptions
	fs.DurationVar(&o.Duration, "duration", defaultSoakDuration, "measured time (after a 1 s warmup); longer than the 45 s a default heartbeat takes to close a silent client")
	fs.IntVar(&o.Rooms, "rooms", 50, "rooms")
	fs.IntVar(&o.Subs, "subs", 10, "subscribers per room")
	fs.IntVar(&o.Rate, "rate", 100, "publishes/s")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Duration <= 0 || o.Rooms <= 0 || o.Subs <= 0 || o.Rate <= 0 {
		return errors.New("soak: -duration, -rooms, -subs and -rate must be positive")
	}
	return runSoak(ctx, o, os.Stdout, os.Stderr)
}

// runSoak runs one long fan-out cell on a durable roomlogd and fails
// unless every publish was acknowledged and every subscriber got every
// event exactly once: a socket the server dropped, a lost or a repeated
// delivery all fail it. It is bounded: the cell, then at most its drain.
func runSoak(ctx context.Context, o soakOptions, out, progress io.Writer) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "roomlog-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintln(progress, "building roomlogd (-tags bench)...")
	bin, err := buildRoomlogd(ctx, root, tmp)
	if err != nil {
		return err
	}
	s, drop, err := startTarget(ctx, "roomlog", bin, root, nil, nil)
	if err != nil {
		return fmt.Errorf("start roomlogd: %w", err)
	}
	defer drop()
	defer s.stop()
	c := fanoutCell{
		Name:  fmt.Sprintf("soak: %d rooms x %d subs @ %d/s for %v", o.Rooms, o.Subs, o.Rate, o.Duration),
		Rooms: o.Rooms, Subs: o.Subs, Rate: o.Rate,
		Warmup: time.Second, Duration: o.Duration, DrainLimit: 30 * time.Second,
	}
	fmt.Fprintf(progress, "%s on %s\n", c.Name, s.base)
	r, err := runFanout(ctx, s, c, nil, progress)
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: %d publishes, %d of %d deliveries, p50 %s, p99 %s, max %s, publish ack p99 %s\n",
		c.Name, r.published, r.received, r.expected, ms(r.deliver.Quantile(0.5)), ms(r.deliver.Quantile(0.99)), ms(r.deliver.Max()), ms(r.ack.Quantile(0.99)))
	if err := soakVerdict(r); err != nil {
		return fmt.Errorf("soak failed: %w", err)
	}
	fmt.Fprintln(out, "soak passed: every publish acknowledged, every delivery made once")
	return nil
}

// soakVerdict says what is wrong with a soak's result, or nil.
func soakVerdict(r fanoutResult) error {
	if r.published == 0 {
		return errors.Join(errors.New("nothing was published"), r.faults())
	}
	return r.faults()
}
