//go:build faults

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/transport/auth"
)

// jsClients drives test/js/faults/client.js: many official socket.io-client
// sockets in one Node process, each re-joining and catching up over REST on
// every reconnect, and checking its own deliveries.
type jsClients struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	wmu     sync.Mutex
	reports chan jsReport
	lats    chan []float64
	errs    chan string
	done    chan struct{}
}

// jsClient is one client's state, as client.js reports it.
type jsClient struct {
	ID         string           `json:"id"`
	User       string           `json:"user"`
	State      string           `json:"state"`
	URL        string           `json:"url"`
	Last       map[string]int64 `json:"last"`
	Count      map[string]int64 `json:"count"`
	Dups       int64            `json:"dups"`
	Gaps       int64            `json:"gaps"`
	Overlap    int64            `json:"overlap"`
	Connects   int              `json:"connects"`
	Recoveries int              `json:"recoveries"`
	RecoveryMs []int64          `json:"recoveryMs"`
	LastError  *string          `json:"lastError"`
}

type jsReport struct {
	T       string     `json:"t"`
	Message string     `json:"message"`
	Clients []jsClient `json:"clients"`
	Lat     []float64  `json:"lat"`
}

// nodeModules returns where socket.io-client is installed; it fails the
// test, never skips it, when node or the module is missing.
func nodeModules(t *testing.T) (node, root, modules string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node (Node.js 18+) is required: %v", err)
	}
	root, err = filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	modules = os.Getenv("ROOMLOG_NODE_MODULES")
	if modules == "" {
		modules = filepath.Join(root, "test", "js", "node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "socket.io-client", "package.json")); err != nil {
		t.Fatalf("socket.io-client is not installed in %s (run scripts/npm-deps.sh): %v", modules, err)
	}
	return node, root, modules
}

// startNodeScript starts node on test/js/<path...> with socket.io-client
// reachable, its stdin and stdout piped and its stderr captured; it fails
// the test when node or the module is missing.
func startNodeScript(t *testing.T, path ...string) (cmd *exec.Cmd, stdin io.WriteCloser, stdout io.ReadCloser, stderr *syncBuffer) {
	t.Helper()
	node, root, modules := nodeModules(t)
	cmd = exec.Command(node, filepath.Join(append([]string{root, "test", "js"}, path...)...))
	cmd.Env = append(os.Environ(), "ROOMLOG_NODE_MODULES="+modules)
	var err error
	if stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if stdout, err = cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	stderr = &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, stdout, stderr
}

// addSellerClient adds a client.js client for seller user, connecting to
// urls in turn, that announces itself online and joins its seller rooms on
// every connect.
func (c *jsClients) addSellerClient(t *testing.T, user string, urls []string) {
	c.send(map[string]any{
		"op": "add", "id": user, "user": user, "urls": urls,
		"token": mint(t, user, domain.RoleSeller),
		"rooms": []string{"user-" + user, "seller-" + user, "sellers"},
		"joins": []map[string]any{
			{"event": "user-online", "args": []any{user}},
			{"event": "join-seller-room", "args": []any{user}},
		},
	})
}

// startJSClients starts one client.js process; it is stopped (and
// continued first, if a test stopped it) when the test ends.
func startJSClients(t *testing.T) *jsClients {
	t.Helper()
	cmd, stdin, stdout, stderr := startNodeScript(t, "faults", "client.js")
	c := &jsClients{t: t, cmd: cmd, stdin: stdin, reports: make(chan jsReport, 16), lats: make(chan []float64, 4), errs: make(chan string, 100), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var r jsReport
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = jsReport{T: "error", Message: "unparsable report: " + sc.Text()}
			}
			switch r.T {
			case "ready":
				close(ready)
			case "report":
				c.reports <- r
			case "lat":
				c.lats <- r.Lat
			default:
				select {
				case c.errs <- r.Message:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		c.send(map[string]any{"op": "exit"})
		_ = stdin.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-c.done
		}
		_ = cmd.Wait()
		if s := stderr.String(); s != "" {
			t.Logf("client.js stderr: %s", tail(s, 2000))
		}
		close(c.errs)
		for m := range c.errs {
			t.Errorf("client.js: %s", m)
		}
	})
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatalf("client.js not ready: %s", stderr.String())
	}
	return c
}

func (c *jsClients) send(cmd map[string]any) {
	b, err := json.Marshal(cmd)
	if err != nil {
		c.t.Fatal(err)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.stdin.Write(append(b, '\n'))
}

// report returns every client's state.
func (c *jsClients) report() []jsClient {
	c.t.Helper()
	c.send(map[string]any{"op": "report"})
	select {
	case r := <-c.reports:
		return r.Clients
	case <-time.After(10 * time.Second):
		c.t.Fatal("client.js: no report within 10s")
		return nil
	}
}

// waitCaughtUp waits until every client not in skip is live with last[room]
// equal to heads[room] for each of its rooms.
func (c *jsClients) waitCaughtUp(total time.Duration, heads func() map[string]int64, skip map[string]bool) []jsClient {
	c.t.Helper()
	deadline := time.Now().Add(total)
	for {
		h := heads()
		cs := c.report()
		behind := ""
		for _, cl := range cs {
			if skip[cl.ID] {
				continue
			}
			if cl.State != "live" {
				behind = fmt.Sprintf("%s is %s (%v)", cl.ID, cl.State, deref(cl.LastError))
				break
			}
			for room, last := range cl.Last {
				if last != h[room] {
					behind = fmt.Sprintf("%s has %s at %d, head %d", cl.ID, room, last, h[room])
					break
				}
			}
			if behind != "" {
				break
			}
		}
		if behind == "" {
			return cs
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("clients not caught up after %v: %s", total, behind)
		}
		time.Sleep(200 * time.Millisecond) // polling another process
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// mint returns a test token for user with roles, valid for an hour.
func mint(t *testing.T, user string, roles ...domain.Role) string {
	t.Helper()
	tok, err := auth.MintHS256([]byte(testSecret), domain.Principal{UserID: user, Roles: roles}, time.Hour, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// presenceOf asks base for users' status.
func presenceOf(base, token string, users []string) (map[string]string, error) {
	q := make([]string, len(users))
	for i, u := range users {
		q[i] = "user=" + u
	}
	req, _ := newGet(base+"/api/v1/presence?"+strings.Join(q, "&"), token)
	resp, err := publishClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("presence: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Users []struct {
			UserID string `json:"userId"`
			Status string `json:"status"`
		} `json:"users"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, u := range out.Users {
		m[u.UserID] = u.Status
	}
	return m, nil
}
