package eventstoretest

import (
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// The helpers below are not about the database: they are the polling and
// logging helpers that every package's database tests share (style.md,
// "Test helpers"), kept here because those tests already import this
// package.

// CheckFor polls f every step until it returns nil, failing the test with
// f's last error once total has elapsed. Tests wait with it instead of
// sleeping.
func CheckFor(t testing.TB, total, step time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %v: %v", total, err)
		}
		time.Sleep(step)
	}
}

// Logger returns a text logger at level that writes to t.Log until the
// test ends; a background goroutine that logs later is silenced instead
// of making the testing package panic.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(LogWriter(t), &slog.HandlerOptions{Level: level}))
}

// LogWriter returns a writer that logs each write on t until the test
// ends, and drops what comes later (a child process's stderr, a late log
// line).
func LogWriter(t testing.TB) io.Writer {
	w := &logWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

// logWriter is LogWriter's writer.
type logWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

// Write logs p on the test, once per call, until the test has ended.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
