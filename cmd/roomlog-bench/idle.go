package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
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
}

func (r idleResult) perConn() float64 {
	if r.conns == 0 {
		return 0
	}
	return float64(r.after-r.before) / float64(r.conns)
}

// nodeGCPreload is loaded into the Node peer (node --expose-gc -r) so
// that SIGUSR2 runs a full GC; the peer itself is unchanged.
const nodeGCPreload = `process.on("SIGUSR2", () => { if (global.gc) { global.gc(); global.gc(); } });` + "\n"

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
func runIdle(ctx context.Context, s *server, n int, gc func(), gcHow string, progress io.Writer) (idleResult, error) {
	res := idleResult{name: s.name, want: n, gc: gcHow}
	var err error
	if res.before, err = settleRSS(ctx, s.pid(), gc); err != nil {
		return res, err
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
	return res, nil
}

// runIdleTargets runs scenario (d) on roomlogd and the Node peer, each
// run on a freshly started server, o.Repeat times in interleaved order
// (roomlog, node, roomlog, node, ...). It returns each target's runs.
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
			var gc func()
			gcHow := "no GC hook in roomlogd: RSS once stable (the Go runtime returns freed pages in the background)"
			var args []string
			if t == "node" {
				var err error
				if args, err = writeNodeGCPreload(tmp); err != nil {
					out[ti] = append(out[ti], idleResult{name: targetName(t), connErr: err})
					continue
				}
				gcHow = "global.gc() (node --expose-gc, SIGUSR2) before each sample"
			}
			s, drop, err := startTarget(ctx, t, bin, root, args...)
			if err != nil {
				out[ti] = append(out[ti], idleResult{name: targetName(t), connErr: err})
				continue
			}
			if t == "node" {
				gc = func() { _ = s.cmd.Process.Signal(syscall.SIGUSR2) }
			}
			fmt.Fprintf(progress, "(d) run %d/%d: target %s at %s (pid %d)\n", rep+1, o.Repeat, s.name, s.base, s.pid())
			r, err := runIdle(ctx, s, o.IdleConns, gc, gcHow, progress)
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
