package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/transport/auth"
)

const (
	testSecret = "test-only-jwt-secret-0123456789abcdef"
	testKey    = "test-only-api-key-0001"
)

func testEnv(dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":         dbURL,
		"ROOMLOG_ADDR":         "127.0.0.1:0",
		"ROOMLOG_FRONTEND_URL": "http://localhost:3000",
		"ROOMLOG_JWT_SECRET":   testSecret,
		"ROOMLOG_API_KEYS":     "backend:" + testKey,
		"ROOMLOG_LOG_LEVEL":    "warn",
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func do(t *testing.T, method, url, bearer, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMainWiring runs the real wiring in-process on a fresh database that
// does not exist yet: it is created and migrated, /readyz answers 200, a
// publish through the API is read back through catch-up, and Close shuts
// everything down.
func TestMainWiring(t *testing.T) {
	t.Parallel()
	u := eventstoretest.NewURL(t)
	// A database name that does not exist yet: Run must create it.
	fresh := strings.Replace(u, "roomlog_test_", "roomlog_fresh_", 1)
	t.Cleanup(func() { dropDatabase(t, fresh) })
	vars := testEnv(fresh)
	cfg, err := LoadConfig(func(k string) string { return vars[k] }, nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	m := NewMain(cfg, &logs)
	if err := m.Run(context.Background()); err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	defer m.Close()
	base := "http://" + m.Addr()

	if code, body := do(t, "GET", base+"/healthz", "", ""); code != 200 {
		t.Fatalf("healthz %d %s", code, body)
	}
	if code, body := do(t, "GET", base+"/readyz", "", ""); code != 200 || !strings.Contains(body, `"name":"membership"`) || !strings.Contains(body, `"name":"unread"`) {
		t.Fatalf("readyz %d %s (want projection detail)", code, body)
	}
	code, body := do(t, "POST", base+"/api/v1/events", testKey, `{"event":"unread-count-update","room":"user-u1","payload":{"unreadCount":3}}`)
	if code != 201 {
		t.Fatalf("publish %d %s", code, body)
	}
	tok, err := auth.MintHS256([]byte(testSecret), domain.Principal{UserID: "u1"}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	code, body = do(t, "GET", base+"/api/v1/rooms/user-u1/events", tok, "")
	if code != 200 || !strings.Contains(body, `"unreadCount":3`) || !strings.Contains(body, `"producer":"backend"`) {
		t.Fatalf("catch-up %d %s", code, body)
	}
	if code, _ := do(t, "GET", base+"/api/v1/rooms/user-u2/events", tok, ""); code != 404 {
		t.Fatalf("another user's room: %d, want 404", code)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

func dropDatabase(t *testing.T, dbURL string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	i := strings.LastIndex(dbURL, "/")
	name := dbURL[i+1:]
	if q := strings.Index(name, "?"); q >= 0 {
		name = name[:q]
	}
	cmd := exec.CommandContext(ctx, "psql", eventstoretest.AdminURL(), "-qc", fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("drop %s: %v %s", name, err, out)
	}
}

// buildServer compiles roomlogd once per test binary run.
var buildServer = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "roomlogd-test-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "roomlogd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// TestSIGTERMUnderLoad runs the real binary, publishes continuously, sends
// SIGTERM, and checks the process exits in time and every acknowledged
// publish is in the log.
func TestSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	bin, err := buildServer()
	if err != nil {
		t.Fatal(err)
	}
	u := eventstoretest.NewURL(t)
	vars := testEnv(u)
	port := freePort(t)
	vars["ROOMLOG_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	var logs syncBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond) // waiting for a child process to listen
	}

	var mu sync.Mutex
	acked := map[string]int64{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"event":"unread-count-update","room":"user-w%d","payload":{"unreadCount":%d}}`, w, i)
				req, _ := http.NewRequest("POST", base+"/api/v1/events", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testKey)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server went away
				}
				var out struct {
					Events []struct {
						Deliveries []struct {
							Room string `json:"room"`
							Seq  int64  `json:"seq"`
						} `json:"deliveries"`
					} `json:"events"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode == 201 {
					d := out.Events[0].Deliveries[0]
					mu.Lock()
					acked[d.Room] = max(acked[d.Room], d.Seq)
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // let load build up before the signal
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		took := time.Since(start)
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
		t.Logf("exited %v after SIGTERM", took)
		if took > 10*time.Second {
			t.Fatalf("shutdown took %v, want <= 10s", took)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit 15s after SIGTERM:\n%s", logs.String())
	}
	close(stop)
	wg.Wait()

	// Every acknowledged publish is in the log.
	pool := poolFor(t, u)
	total := int64(0)
	for room, seq := range acked {
		var head int64
		if err := pool.QueryRow(context.Background(), "SELECT coalesce(max(seq), 0) FROM events WHERE room = $1", room).Scan(&head); err != nil {
			t.Fatal(err)
		}
		if head < seq {
			t.Fatalf("room %s: acknowledged seq %d but the log ends at %d", room, seq, head)
		}
		total += seq
	}
	if total == 0 {
		t.Fatal("no publish was acknowledged; the test proved nothing")
	}
	t.Logf("%d acknowledged publishes across %d rooms, all in the log", total, len(acked))
}
