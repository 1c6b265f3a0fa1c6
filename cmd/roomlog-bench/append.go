package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

type appendOptions struct {
	Duration    time.Duration
	Rooms       int
	Rate        int
	BatchSize   int
	AsyncCommit bool
	Writers     int
	Only        string
}

func recreateDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return nil
}

// payload is a ~300-byte event, like a chat message.
var payload = json.RawMessage(`{"chatId":"c-1","message":{"_id":"m-000000000000000000000001","content":"Hello there, this is a benchmark message of a realistic size for a chat application.","senderId":"u-12345","createdAt":"2026-11-25T12:00:00Z"},"senderId":"u-12345"}`)

type cellResult struct {
	events    int
	elapsed   time.Duration
	latencies []time.Duration
	errors    int
}

func (r cellResult) rate() float64 { return float64(r.events) / r.elapsed.Seconds() }

func (r cellResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

// closedLoop runs conc publishers that each call op back to back for d.
func closedLoop(ctx context.Context, conc int, d time.Duration, op func(ctx context.Context, rng *rand.Rand) (int, error)) cellResult {
	var mu sync.Mutex
	var res cellResult
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			var lat []time.Duration
			events, errs := 0, 0
			for ctx.Err() == nil {
				t0 := time.Now()
				n, err := op(context.WithoutCancel(ctx), rng)
				if err != nil {
					errs++
					continue
				}
				lat = append(lat, time.Since(t0))
				events += n
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.events += events
			res.errors += errs
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

func runAppend(ctx context.Context, dbURL string, o appendOptions, out io.Writer, logger *slog.Logger) error {
	if o.Duration <= 0 {
		o.Duration = 4 * time.Second
	}
	if err := eventstore.MigrateUp(dbURL); err != nil {
		return err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	cfg.MaxConns = 80
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE bench_raw (room text NOT NULL, type text NOT NULL, payload json NOT NULL, producer text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create raw table: %w", err)
	}
	var fsync, sc string
	if err := pool.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &sc); err != nil {
		return err
	}

	stores := map[bool]*eventstore.Store{}
	for _, async := range []bool{false, true} {
		if async && !o.AsyncCommit {
			continue
		}
		s := eventstore.New(pool, logger, &eventstore.Config{AsyncCommit: async, Writers: o.Writers})
		if err := s.Start(ctx); err != nil {
			return err
		}
		defer s.Stop()
		stores[async] = s
	}
	room := func(rng *rand.Rand) domain.Room { return domain.Room(fmt.Sprintf("chat-%d", rng.IntN(o.Rooms))) }
	ours := func(s *eventstore.Store, batch int) func(ctx context.Context, rng *rand.Rand) (int, error) {
		return func(ctx context.Context, rng *rand.Rand) (int, error) {
			reqs := make([]eventstore.AppendRequest, batch)
			for i := range reqs {
				reqs[i] = eventstore.AppendRequest{Type: "new-message", Rooms: []domain.Room{room(rng)}, Payload: payload, Producer: "bench"}
			}
			_, err := s.AppendBatch(ctx, reqs)
			return batch, err
		}
	}
	raw := func(batch int) func(ctx context.Context, rng *rand.Rand) (int, error) {
		return func(ctx context.Context, rng *rand.Rand) (int, error) {
			rooms := make([]string, batch)
			payloads := make([]string, batch)
			for i := range rooms {
				rooms[i] = string(room(rng))
				payloads[i] = string(payload)
			}
			_, err := pool.Exec(ctx, `INSERT INTO bench_raw (room, type, payload, producer)
				SELECT r, 'new-message', p::json, 'bench' FROM unnest($1::text[], $2::text[]) AS u(r, p)`, rooms, payloads)
			return batch, err
		}
	}

	fmt.Fprintf(out, "# roomlog append benchmark\n")
	fmt.Fprintf(out, "server: fsync=%s synchronous_commit=%s; %d rooms; ~%d-byte payload; %v per cell\n", fsync, sc, o.Rooms, len(payload), o.Duration)
	fmt.Fprintf(out, "raw ceiling = the same rows as multi-row INSERTs into a plain table (no seq, no hash chain, no idempotency), same publishers, same run\n\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tpublishers\troomlog ev/s\tp50\tp99\traw ev/s\traw p99\troomlog/raw\terrors\t")
	type key struct {
		mode string
		conc int
	}
	ratios := map[key]float64{}
	for _, mode := range []struct {
		name  string
		batch int
	}{{"single", 1}, {fmt.Sprintf("batch of %d", o.BatchSize), o.BatchSize}} {
		for _, conc := range []int{1, 8, 64} {
			if o.Only != "" && (!strings.HasPrefix(mode.name, o.Only) || conc != 64) {
				continue
			}
			r := closedLoop(ctx, conc, o.Duration, ours(stores[false], mode.batch))
			b := closedLoop(ctx, conc, o.Duration, raw(mode.batch))
			ratio := r.rate() / b.rate()
			ratios[key{mode.name, conc}] = ratio
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.0f\t%s\t%.2f\t%d\t\n", mode.name, conc, r.rate(), ms(r.pct(0.5)), ms(r.pct(0.99)), b.rate(), ms(b.pct(0.99)), ratio, r.errors+b.errors)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if s, ok := stores[true]; ok {
		for _, conc := range []int{1, 64} {
			r := closedLoop(ctx, conc, o.Duration, ours(s, 1))
			fmt.Fprintf(tw, "single, synchronous_commit=off (NOT durable)\t%d\t%.0f\t%s\t%s\t\t\t\t%d\t\n", conc, r.rate(), ms(r.pct(0.5)), ms(r.pct(0.99)), r.errors)
		}
	}
	tw.Flush()

	// Open loop: a fixed arrival rate, latency measured from each event's
	// scheduled send time, so a stall cannot hide (no coordinated omission).
	lat, sent, errs := openLoop(ctx, o.Rate, o.Duration, func(ctx context.Context, rng *rand.Rand) error {
		_, err := ours(stores[false], 1)(ctx, rng)
		return err
	})
	r := cellResult{latencies: lat}
	fmt.Fprintf(out, "\nopen loop at %d events/s for %v (single events, latency from scheduled send): sent %d, errors %d, p50 %s, p99 %s, max %s\n",
		o.Rate, o.Duration, sent, errs, ms(r.pct(0.5)), ms(r.pct(0.99)), ms(r.pct(1)))
	fmt.Fprintf(out, "targets: 64 publishers >= 0.50x raw (single: %.2fx, batch: %.2fx); p99 at %d ev/s <= 20 ms (%s)\n",
		ratios[key{"single", 64}], ratios[key{fmt.Sprintf("batch of %d", o.BatchSize), 64}], o.Rate, ms(r.pct(0.99)))
	return nil
}

func openLoop(ctx context.Context, rate int, d time.Duration, op func(ctx context.Context, rng *rand.Rand) error) ([]time.Duration, int, int) {
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		scheduled := start.Add(time.Duration(i) * interval)
		if w := time.Until(scheduled); w > 0 {
			time.Sleep(w)
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			err := op(ctx, rng)
			l := time.Since(scheduled)
			mu.Lock()
			if err != nil {
				errs++
			} else {
				lat = append(lat, l)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat, n, errs
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }
