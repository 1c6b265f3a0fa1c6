package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit so the tool
// can hold tens of thousands of sockets. The servers it starts inherit the
// raised limit (exec keeps rlimits). It returns the resulting soft limit.
func raiseNoFile() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}

// vmRSS reads VmRSS of process pid from /proc, in bytes.
func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// idleResult is scenario (d) for one target.
type idleResult struct {
	name          string
	want, conns   int
	before, after int64 // VmRSS, bytes
	connectTook   time.Duration
	gc            string
	connErr       error // why fewer than want connected, if so
	// goroutines before and after connecting (roomlogd with
	// -idle-profile only; 0 otherwise).
	gBefore, gAfter int
	// gcTook is how long the last forced collection of the connected
	// server's heap took (0 if it did not say): what marking the live
	// heap, mostly the sockets' state, costs.
	gcTook time.Duration
}

func (r idleResult) perConn() float64 {
	if r.conns == 0 {
		return 0
	}
	return float64(r.after-r.before) / float64(r.conns)
}

// nodeGCPreload is loaded into the Node peer (node --expose-gc -r) so
// that SIGUSR2 runs a full GC and writes how long the first of the two
// took to stderr (nodeGCDone); the peer itself is unchanged.
const nodeGCPreload = `process.on("SIGUSR2", () => {
  if (!global.gc) return;
  const t0 = process.hrtime.bigint();
  global.gc();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  global.gc();
  process.stderr.write("` + nodeGCDone + `" + ms.toFixed(3) + "ms\n");
});
`

// nodeGCDone starts the line the Node peer's preload writes after a forced
// collection, followed by its duration.
const nodeGCDone = "node-peer: gc took "

// lastGCTook returns the duration of the last forced collection that logs
// report, from roomlogd's bench hook ("roomlogd-bench: gc done 3 took
// 121.5ms") or the Node peer's preload ("node-peer: gc took 45.1ms"); 0
// if there is none.
func lastGCTook(logs string) time.Duration {
	lines := strings.Split(logs, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.HasPrefix(l, benchGCDone) && !strings.HasPrefix(l, nodeGCDone) {
			continue
		}
		_, took, ok := strings.Cut(l, " took ")
		if d, err := time.ParseDuration(strings.TrimSpace(took)); ok && err == nil {
			return d
		}
	}
	return 0
}

// writeNodeGCPreload writes nodeGCPreload into dir and returns the node
// arguments that load it.
func writeNodeGCPreload(dir string) ([]string, error) {
	p := filepath.Join(dir, "gc-preload.js")
	if err := os.WriteFile(p, []byte(nodeGCPreload), 0o600); err != nil {
		return nil, err
	}
	return []string{"--expose-gc", "-r", p}, nil
}

// settleRSS forces a GC if it can (gc non-nil) and waits until the RSS of
// pid changes by less than 1% over two consecutive 1 s samples (at most
// 20 s), returning the last sample.
func settleRSS(ctx context.Context, pid int, gc func()) (int64, error) {
	prev := int64(-1)
	stable := 0
	for i := 0; i < 20 && ctx.Err() == nil; i++ {
		if gc != nil {
			gc()
		}
		time.Sleep(time.Second) // let the GC and the kernel settle
		r, err := vmRSS(pid)
		if err != nil {
			return 0, err
		}
		if prev >= 0 && math.Abs(float64(r-prev)) < 0.01*float64(prev) {
			stable++
			if stable >= 2 {
				return r, nil
			}
		} else {
			stable = 0
		}
		prev = r
	}
	return prev, ctx.Err()
}

// runIdle is scenario (d): the RSS the server gains per idle Socket.IO
// connection. It samples VmRSS after start (settled), opens n websocket
// connections, each subscribed (with an ack) to its own user room and
// answering pings, waits until the RSS is stable again, and samples it.
// If a connection fails (e.g. file descriptors), it keeps the ones that
// connected and reports the largest count reached.
// If prof is non-nil it is called after each sample ("before", "after")
// and returns the server's goroutine count.
func runIdle(ctx context.Context, s *server, n int, gc func(), gcHow string, prof func(stage string) int, progress io.Writer) (idleResult, error) {
	res := idleResult{name: s.name, want: n, gc: gcHow}
	var err error
	if res.before, err = settleRSS(ctx, s.pid(), gc); err != nil {
		return res, err
	}
	if prof != nil {
		res.gBefore = prof("before")
	}
	t0 := time.Now()
	conns, connErr := dialRooms(ctx, s, n,
		func(i int) string { return fmt.Sprintf("bench%d", i) }, benchRoom,
		func(_ int, sc *sioConn) {
			// Keep answering the server's pings while idle.
			go func() { _ = sc.readEvents("x-none", func(int64) {}) }()
		})
	defer closeAll(conns)
	res.connectTook = time.Since(t0)
	for _, c := range conns {
		if c != nil {
			res.conns++
		}
	}
	res.connErr = connErr
	fmt.Fprintf(progress, "  %s: %d/%d idle sockets connected and subscribed in %v\n", s.name, res.conns, n, res.connectTook.Round(time.Millisecond))
	if res.after, err = settleRSS(ctx, s.pid(), gc); err != nil {
		return res, err
	}
	if gc != nil {
		// Node's preload writes its line after the collection, on its
		// own time; settleRSS slept a second after the last signal.
		res.gcTook = lastGCTook(s.logs.String())
	}
	if prof != nil {
		res.gAfter = prof("after")
	}
	return res, nil
}

// benchGCDone starts the line roomlogd's bench build writes to stderr once
// it has handled a SIGUSR2 (cmd/roomlogd/benchbuild_on.go).
const benchGCDone = "roomlogd-bench: gc done "

// roomlogdGC returns a function that sends the bench build of roomlogd
// SIGUSR2 (runtime.GC + debug.FreeOSMemory) and waits, at most 30 s, for it
// to report that it is done: under load a collection of hundreds of MiB
// takes seconds, and an RSS sampled meanwhile still holds the garbage.
func roomlogdGC(ctx context.Context, s *server) func() {
	return func() {
		before := strings.Count(s.logs.String(), benchGCDone)
		if err := s.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if strings.Count(s.logs.String(), benchGCDone) > before {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// saveProfiles fetches the heap profile (after a GC) and the goroutine
// dump of a server serving net/http/pprof at pprofAddr into dir, as
// <name>-heap-<stage>.pb.gz, <name>-memstats-<stage>.txt (the heap
// profile's text form, which ends with runtime.MemStats) and
// <name>-goroutines-<stage>.txt, and returns
// the goroutine count (0 if it could not be read).
func saveProfiles(ctx context.Context, pprofAddr, dir, name, stage string, progress io.Writer) int {
	get := func(path, file string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+pprofAddr+path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return b, os.WriteFile(filepath.Join(dir, file), b, 0o644)
	}
	if _, err := get("/debug/pprof/heap?gc=1", fmt.Sprintf("%s-heap-%s.pb.gz", name, stage)); err != nil {
		fmt.Fprintf(progress, "  heap profile (%s): %v\n", stage, err)
	}
	// The text form ends with runtime.MemStats (HeapInuse, StackInuse...).
	if _, err := get("/debug/pprof/heap?debug=1", fmt.Sprintf("%s-memstats-%s.txt", name, stage)); err != nil {
		fmt.Fprintf(progress, "  heap text (%s): %v\n", stage, err)
	}
	b, err := get("/debug/pprof/goroutine?debug=1", fmt.Sprintf("%s-goroutines-%s.txt", name, stage))
	if err != nil {
		fmt.Fprintf(progress, "  goroutine dump (%s): %v\n", stage, err)
		return 0
	}
	// The dump starts with "goroutine profile: total N".
	line, _, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
	return n
}

// runIdleTargets runs scenario (d) on roomlogd and the Node peer, each
// run on a freshly started server, o.Repeat times in interleaved order
// (roomlog, node, roomlog, node, ...). It returns each target's runs.
// Both get a forced GC before every RSS sample: Node through the preload,
// roomlogd through the bench build's SIGUSR2 hook unless -idle-gc=false.
// With -idle-profile, roomlogd also serves pprof on a free loopback port
// and its profiles are saved before and after connecting.
func runIdleTargets(ctx context.Context, o scenarioOptions, root, bin, tmp string, progress io.Writer) [][]idleResult {
	var keys []string
	for _, t := range o.Targets {
		if t == "roomlog" || t == "node" { // (d) compares durable roomlog with Node only
			keys = append(keys, t)
		}
	}
	out := make([][]idleResult, len(keys))
	for rep := range o.Repeat {
		for ti, t := range keys {
			if ctx.Err() != nil {
				return out
			}
			var env, args []string
			var pprofAddr, gcHow string
			switch t {
			case "roomlog":
				if o.IdleProfile != "" {
					err := os.MkdirAll(o.IdleProfile, 0o755)
					if err == nil {
						pprofAddr, err = freeAddr()
					}
					if err != nil {
						out[ti] = append(out[ti], idleResult{name: targetName(t), connErr: fmt.Errorf("-idle-profile: %w", err)})
						continue
					}
					env = append(env, "ROOMLOG_PPROF_ADDR="+pprofAddr)
				}
				gcHow = "runtime.GC() + debug.FreeOSMemory() (bench build, SIGUSR2) before each sample"
				if !o.IdleGC {
					gcHow = "no GC hook (-idle-gc=false): RSS once stable (the Go runtime returns freed pages in the background)"
				}
			case "node":
				var err error
				if args, err = writeNodeGCPreload(tmp); err != nil {
					out[ti] = append(out[ti], idleResult{name: targetName(t), connErr: err})
					continue
				}
				gcHow = "global.gc() (node --expose-gc, SIGUSR2) before each sample"
			}
			s, drop, err := startTarget(ctx, t, bin, root, env, o.RoomlogEnv, args...)
			if err != nil {
				out[ti] = append(out[ti], idleResult{name: targetName(t), connErr: err})
				continue
			}
			var gc func()
			var prof func(stage string) int
			switch t {
			case "roomlog":
				if o.IdleGC {
					gc = roomlogdGC(ctx, s)
				}
				if o.IdleProfile != "" {
					name := "roomlog"
					if o.Repeat > 1 { // keep every run's profiles
						name = fmt.Sprintf("roomlog-run%d", rep+1)
					}
					prof = func(stage string) int {
						return saveProfiles(ctx, pprofAddr, o.IdleProfile, name, stage, progress)
					}
				}
			case "node":
				gc = func() { _ = s.cmd.Process.Signal(syscall.SIGUSR2) }
			}
			fmt.Fprintf(progress, "(d) run %d/%d: target %s at %s (pid %d)\n", rep+1, o.Repeat, s.name, s.base, s.pid())
			r, err := runIdle(ctx, s, o.IdleConns, gc, gcHow, prof, progress)
			if err != nil && r.connErr == nil {
				r.connErr = err
			}
			s.stop()
			drop()
			out[ti] = append(out[ti], r)
		}
	}
	return out
}

func printIdle(out io.Writer, o scenarioOptions, byTarget [][]idleResult, nofile uint64) {
	fmt.Fprintf(out, "\n(d) memory per idle connection: %d websocket Socket.IO connections, each subscribed to its own user room, idle (pings only); server VmRSS from /proc/<pid>/status before and after, each once stable (fd limit %d, inherited by the servers); %s:\n", o.IdleConns, nofile, runsNote(o.Repeat))
	// Each target's median KiB per connection over the runs that connected.
	medians := make([]float64, len(byTarget))
	nodeMedian := 0.0
	for ti, rs := range byTarget {
		var per []float64
		for _, r := range rs {
			if r.conns > 0 {
				per = append(per, r.perConn())
			}
		}
		medians[ti] = median(per)
		if len(rs) > 0 && rs[0].name == "node socket.io" {
			nodeMedian = medians[ti]
		}
	}
	for ti, rs := range byTarget {
		for k, r := range rs {
			run := ""
			if o.Repeat > 1 {
				run = fmt.Sprintf(" run %d", k+1)
			}
			if r.conns == 0 {
				fmt.Fprintf(out, "  %s%s: failed: %v\n", r.name, run, r.connErr)
				continue
			}
			fmt.Fprintf(out, "  %s%s: %d connections (connected in %v): RSS %.1f MiB -> %.1f MiB, %.1f KiB per connection; %s\n",
				r.name, run, r.conns, r.connectTook.Round(time.Millisecond), float64(r.before)/(1<<20), float64(r.after)/(1<<20), r.perConn()/1024, r.gc)
			if r.gcTook > 0 {
				fmt.Fprintf(out, "    one full collection of the heap with the sockets: %v (the last forced one)\n", r.gcTook.Round(100*time.Microsecond))
			}
			if r.gAfter > 0 {
				fmt.Fprintf(out, "    goroutines %d -> %d, %.2f per connection\n", r.gBefore, r.gAfter, float64(r.gAfter-r.gBefore)/float64(r.conns))
			}
			if r.connErr != nil {
				fmt.Fprintf(out, "    only %d of %d connected: %v\n", r.conns, r.want, r.connErr)
			}
		}
		if len(rs) == 0 || medians[ti] == 0 {
			continue
		}
		ratio := ""
		if rs[0].name != "node socket.io" && nodeMedian > 0 {
			ratio = fmt.Sprintf(", %.2fx node", medians[ti]/nodeMedian)
		}
		fmt.Fprintf(out, "  => %s: %.1f KiB per connection%s\n", rs[0].name, medians[ti]/1024, ratio)
	}
}
