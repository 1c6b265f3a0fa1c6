package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

// benchOrigin is the frontend origin the bench's roomlogd allows.
const benchOrigin = "http://localhost:3000"

// server is a system under test the tool started: roomlogd or the Node
// peer. It always listens on 127.0.0.1.
type server struct {
	name string
	base string // http://127.0.0.1:port
	cmd  *exec.Cmd
	logs *lockedBuffer
	// publish posts one event with payload p to room; roomlogd through
	// its REST publish API, the peer through POST /publish.
	publish func(ctx context.Context, c *http.Client, room string, p []byte) error
	// publishBatch posts events with payloads ps (at most 1000) to room
	// in one request, delivered in this order.
	publishBatch func(ctx context.Context, c *http.Client, room string, ps [][]byte) error
	// token mints a socket token for user ("" for the peer: no auth).
	token func(user string) string
	// metricsURL is roomlogd's /metrics ("" for the peer).
	metricsURL string
	// bearer is what catch-up reads send (roomlogd only).
	bearer string
	// relaunch starts the same server again on the same port and
	// database (roomlogd only).
	relaunch func(ctx context.Context) (*server, error)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 {
		return len(p), nil // enough to diagnose; never grow without bound
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// moduleRoot is the directory of roomlog's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run roomlog-bench inside the roomlog module")
	}
	return filepath.Dir(mod), nil
}

// buildRoomlogd builds the benchmark build of roomlogd (-tags bench, the
// only build that honours ROOMLOG_UNSAFE_ASYNC_COMMIT) into dir.
func buildRoomlogd(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "roomlogd-bench")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "bench", "-o", bin, "./cmd/roomlogd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build -tags bench ./cmd/roomlogd: %v\n%s", err, out)
	}
	return bin, nil
}

// startRoomlogd starts bin on a fresh port against dbURL, with rate
// limits off (the bench is the only producer) and, if asyncCommit,
// synchronous_commit off (NOT durable), and waits for /readyz. env
// ("NAME=value") is added to the server's environment.
func startRoomlogd(ctx context.Context, bin, dbURL string, asyncCommit bool, env ...string) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return launchRoomlogd(ctx, bin, dbURL, asyncCommit, addr, randHex(24), "bench-key-"+randHex(12), env...)
}

// launchRoomlogd starts bin on addr with the given JWT secret and API key
// and waits for /readyz. The server's relaunch starts the same
// configuration again (same port, database, secret), as after a crash.
// env ("NAME=value") is added to the server's environment.
func launchRoomlogd(ctx context.Context, bin, dbURL string, asyncCommit bool, addr, secret, key string, env ...string) (*server, error) {
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"ROOMLOG_ADDR="+addr,
		"ROOMLOG_FRONTEND_URL="+benchOrigin,
		"ROOMLOG_JWT_SECRET="+secret,
		"ROOMLOG_API_KEYS=bench:"+key,
		"ROOMLOG_RATE_PUBLISH=-1",
		"ROOMLOG_RATE_SOCKET=-1",
		"ROOMLOG_LOG_LEVEL=warn",
		"ROOMLOG_ENV=development",
		fmt.Sprintf("ROOMLOG_UNSAFE_ASYNC_COMMIT=%t", asyncCommit),
		// Up to three roomlogds run side by side on one PostgreSQL server
		// (default max_connections 100); the default pool of 32 each would
		// exhaust it during a burst of subscribes.
		"ROOMLOG_DB_MAX_CONNS=20",
	)
	cmd.Env = append(cmd.Env, env...)
	logs := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	name := "roomlog"
	if asyncCommit {
		name = "roomlog sync_commit=off"
	}
	s := &server{name: name, base: "http://" + addr, metricsURL: "http://" + addr + "/metrics", cmd: cmd, logs: logs}
	s.relaunch = func(ctx context.Context) (*server, error) {
		return launchRoomlogd(ctx, bin, dbURL, asyncCommit, addr, secret, key, env...)
	}
	s.token = func(user string) string {
		t, err := auth.MintHS256([]byte(secret), domain.Principal{UserID: user, Roles: []domain.Role{domain.RoleAdmin}}, 2*time.Hour, time.Now(), nil)
		if err != nil {
			panic(err) // the secret is ours and long enough
		}
		return t
	}
	s.bearer = s.token("bench-reader")
	s.publish = func(ctx context.Context, c *http.Client, room string, p []byte) error {
		body := appendBenchEvent(make([]byte, 0, len(p)+64), room, p)
		return post(ctx, c, s.base+"/api/v1/events", "Bearer "+key, body)
	}
	s.publishBatch = func(ctx context.Context, c *http.Client, room string, ps [][]byte) error {
		body := []byte(`{"events":[`)
		for i, p := range ps {
			if i > 0 {
				body = append(body, ',')
			}
			body = appendBenchEvent(body, room, p)
		}
		body = append(body, "]}"...)
		return post(ctx, c, s.base+"/api/v1/events", "Bearer "+key, body)
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, s.base+"/readyz", 60*time.Second); err != nil {
		s.stop()
		return nil, fmt.Errorf("roomlogd not ready: %w\n%s", err, logs.String())
	}
	return s, nil
}

// startPeer starts test/js/bench/peer.js and reads its port. env is
// added to the environment (e.g. ROOMLOG_PEER_RECOVERY=1); nodeArgs go
// before the script (e.g. --expose-gc).
func startPeer(ctx context.Context, root string, env []string, nodeArgs ...string) (*server, error) {
	cmd := exec.Command("node", append(slices.Clone(nodeArgs), filepath.Join(root, "test", "js", "bench", "peer.js"))...)
	cmd.Env = append(os.Environ(), env...)
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("node peer: %w", err)
	}
	s := &server{name: "node socket.io", cmd: cmd, logs: logs}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		for sc.Scan() {
		}
	}()
	select {
	case l := <-line:
		var v struct{ Port int }
		if err := json.Unmarshal([]byte(l), &v); err != nil || v.Port == 0 {
			s.stop()
			return nil, fmt.Errorf("node peer said %q: %v\n%s", l, err, logs.String())
		}
		s.base = fmt.Sprintf("http://127.0.0.1:%d", v.Port)
	case <-time.After(20 * time.Second):
		s.stop()
		return nil, fmt.Errorf("node peer did not start\n%s", logs.String())
	}
	s.token = func(string) string { return "" }
	s.publish = func(ctx context.Context, c *http.Client, room string, p []byte) error {
		return post(ctx, c, s.base+"/publish?event=x-bench&room="+url.QueryEscape(room), "", p)
	}
	s.publishBatch = func(ctx context.Context, c *http.Client, room string, ps [][]byte) error {
		body := append([]byte("["), bytes.Join(ps, []byte(","))...)
		body = append(body, ']')
		return post(ctx, c, s.base+"/publish?batch=1&event=x-bench&room="+url.QueryEscape(room), "", body)
	}
	return s, nil
}

// serverDatabase prefixes the temporary databases of the roomlogds the
// tool starts, on DATABASE_URL's server.
const serverDatabase = "roomlog_bench_srv"

// targetName is how the tables name target key.
func targetName(key string) string {
	switch key {
	case "node":
		return "node socket.io"
	case "async":
		return "roomlog sync_commit=off"
	case "tail":
		return "roomlog tail only"
	}
	return key
}

// startTarget starts target key: roomlog (durable roomlogd), async
// (roomlogd with synchronous_commit off), tail (durable roomlogd with the
// live hand-off off: ROOMLOG_TAIL_ONLY) or node (the peer, started with
// nodeArgs). env ("NAME=value", e.g. ROOMLOG_PPROF_ADDR) is added to the
// server's environment, whichever it is; roomlogEnv (-roomlog-env, e.g.
// GOGC=400) only to a roomlogd's. A roomlogd gets a fresh database
// of its own, named after the target and this process so that targets
// running side by side, and another engineer's bench on the same server,
// never share one; drop drops it (a no-op for the peer). Call drop after
// stopping the server.
func startTarget(ctx context.Context, key, bin, root string, env, roomlogEnv []string, nodeArgs ...string) (s *server, drop func(), err error) {
	switch key {
	case "roomlog", "async", "tail":
		env = append(slices.Clone(roomlogEnv), env...)
		if key == "tail" {
			// The hand-off off: this process's commits reach the sockets
			// through NOTIFY and the tail, as other processes' do.
			env = append(env, "ROOMLOG_TAIL_ONLY=true")
		}
		db := fmt.Sprintf("%s_%s_%d", serverDatabase, key, os.Getpid())
		dbURL, err := namedBenchDatabase(ctx, db)
		if err != nil {
			return nil, nil, err
		}
		drop := func() { dropBenchDatabase(context.WithoutCancel(ctx), db) }
		s, err := startRoomlogd(ctx, bin, dbURL, key == "async", env...)
		if err != nil {
			drop()
			return nil, nil, err
		}
		s.name = targetName(key)
		return s, drop, nil
	case "node":
		s, err := startPeer(ctx, root, env, nodeArgs...)
		if err != nil {
			return nil, nil, err
		}
		return s, func() {}, nil
	default:
		return nil, nil, fmt.Errorf("unknown target %q (have roomlog, node, async, tail)", key)
	}
}

// stop asks the server to shut down (SIGTERM) and kills it after 15 s.
func (s *server) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// kill ends the server with SIGKILL, as a crash would, and reaps it.
func (s *server) kill() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// pid is the server process's id.
func (s *server) pid() int { return s.cmd.Process.Pid }

func waitReady(ctx context.Context, u string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond) // polling a starting process
	}
}

func post(ctx context.Context, c *http.Client, u, authz string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, "POST", u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var buf [512]byte
	n, _ := resp.Body.Read(buf[:])
	for {
		if _, err := resp.Body.Read(buf[:]); err != nil {
			break
		}
	}
	if resp.StatusCode >= 300 {
		return fmt.Errorf("POST %s: %d %s", u, resp.StatusCode, buf[:n])
	}
	return nil
}

// appendBenchEvent appends the REST publish API's event object for an
// x-bench event with payload p (JSON) to room.
func appendBenchEvent(b []byte, room string, p []byte) []byte {
	b = append(b, `{"event":"x-bench","room":`...)
	q, _ := json.Marshal(room)
	b = append(b, q...)
	b = append(b, `,"payload":`...)
	b = append(b, p...)
	return append(b, '}')
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
