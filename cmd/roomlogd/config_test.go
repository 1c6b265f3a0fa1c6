package main

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{
		"ROOMLOG_FRONTEND_URL": "http://localhost:3000",
		"ROOMLOG_JWT_SECRET":   strings.Repeat("s", 32),
	}
	env := func(over map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := over[k]; ok {
				return v
			}
			return base[k]
		}
	}
	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		c, err := LoadConfig(env(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr != DefaultAddr || c.RecoveryWindow != 24*time.Hour || c.MaxPayloadBytes != 64<<10 || c.DatabaseURL != DefaultDatabaseURL || c.AuthCookie != "token" || c.AppendWriters != 1 || c.BurstGOGC != 0 {
			t.Fatalf("defaults: %+v", c)
		}
	})
	t.Run("FlagsOverrideEnv", func(t *testing.T) {
		t.Parallel()
		c, err := LoadConfig(env(map[string]string{"ROOMLOG_ADDR": "127.0.0.1:1"}), []string{"-addr", "127.0.0.1:2"})
		if err != nil || c.Addr != "127.0.0.1:2" {
			t.Fatalf("%+v %v", c, err)
		}
	})
	t.Run("PprofLoopback", func(t *testing.T) {
		t.Parallel()
		for _, addr := range []string{"127.0.0.1:6060", "[::1]:0", "localhost:6060", "127.0.0.2:6060"} {
			c, err := LoadConfig(env(map[string]string{"ROOMLOG_PPROF_ADDR": addr}), nil)
			if err != nil || c.PprofAddr != addr {
				t.Fatalf("%s: %+v %v", addr, c.PprofAddr, err)
			}
		}
	})
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
	}{
		{"NoFrontend", map[string]string{"ROOMLOG_FRONTEND_URL": ""}, "ROOMLOG_FRONTEND_URL"},
		{"FrontendWithPath", map[string]string{"ROOMLOG_FRONTEND_URL": "http://x/app"}, "ROOMLOG_FRONTEND_URL"},
		{"NoJWT", map[string]string{"ROOMLOG_JWT_SECRET": ""}, "ROOMLOG_JWT_SECRET"},
		{"ShortSecret", map[string]string{"ROOMLOG_JWT_SECRET": "short"}, "ROOMLOG_JWT_SECRET"},
		{"MissingPEM", map[string]string{"ROOMLOG_JWT_PUBLIC_KEYS": "/nonexistent.pem"}, "ROOMLOG_JWT_PUBLIC_KEYS"},
		{"BadAddr", map[string]string{"ROOMLOG_ADDR": "nope"}, "ROOMLOG_ADDR"},
		{"BadDB", map[string]string{"DATABASE_URL": "mysql://x"}, "DATABASE_URL"},
		{"BadWindow", map[string]string{"ROOMLOG_RECOVERY_WINDOW": "soon"}, "ROOMLOG_RECOVERY_WINDOW"},
		{"TinyWindow", map[string]string{"ROOMLOG_RECOVERY_WINDOW": "1ms"}, "ROOMLOG_RECOVERY_WINDOW"},
		{"BadPayload", map[string]string{"ROOMLOG_MAX_PAYLOAD_BYTES": "lots"}, "ROOMLOG_MAX_PAYLOAD_BYTES"},
		{"HugePayload", map[string]string{"ROOMLOG_MAX_PAYLOAD_BYTES": "999999999"}, "ROOMLOG_MAX_PAYLOAD_BYTES"},
		{"BadLevel", map[string]string{"ROOMLOG_LOG_LEVEL": "loud"}, "ROOMLOG_LOG_LEVEL"},
		{"BadBool", map[string]string{"ROOMLOG_ALLOW_FSYNC_OFF": "maybe"}, "ROOMLOG_ALLOW_FSYNC_OFF"},
		{"PprofAllInterfaces", map[string]string{"ROOMLOG_PPROF_ADDR": ":6060"}, "ROOMLOG_PPROF_ADDR"},
		{"PprofPublicIP", map[string]string{"ROOMLOG_PPROF_ADDR": "10.0.0.1:6060"}, "ROOMLOG_PPROF_ADDR"},
		{"PprofUnspecified", map[string]string{"ROOMLOG_PPROF_ADDR": "0.0.0.0:6060"}, "ROOMLOG_PPROF_ADDR"},
		{"PprofHostName", map[string]string{"ROOMLOG_PPROF_ADDR": "example.com:6060"}, "ROOMLOG_PPROF_ADDR"},
		{"PprofNoPort", map[string]string{"ROOMLOG_PPROF_ADDR": "127.0.0.1"}, "ROOMLOG_PPROF_ADDR"},
		{"NoWriters", map[string]string{"ROOMLOG_APPEND_WRITERS": "-1"}, "ROOMLOG_APPEND_WRITERS"},
		{"TooManyWriters", map[string]string{"ROOMLOG_APPEND_WRITERS": "9"}, "ROOMLOG_APPEND_WRITERS"},
		{"BadBurstGOGC", map[string]string{"ROOMLOG_BURST_GOGC": "low"}, "ROOMLOG_BURST_GOGC"},
		{"NegativeBurstGOGC", map[string]string{"ROOMLOG_BURST_GOGC": "-2"}, "ROOMLOG_BURST_GOGC"},
		{"HugeBurstGOGC", map[string]string{"ROOMLOG_BURST_GOGC": "5000"}, "ROOMLOG_BURST_GOGC"},
		{"BadGoroutineReads", map[string]string{"ROOMLOG_WS_GOROUTINE_READS": "sometimes"}, "ROOMLOG_WS_GOROUTINE_READS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadConfig(env(tt.env), nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantVar) {
				t.Fatalf("err = %v, want it to name %s", err, tt.wantVar)
			}
		})
	}
}

// TestConfigTailOnly: the live hand-off is on unless ROOMLOG_TAIL_ONLY
// turns it off; a value that is not a boolean names the variable.
func TestConfigTailOnly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value   string
		want    bool
		wantErr bool
	}{
		{"", false, false},
		{"true", true, false},
		{"false", false, false},
		{"sometimes", false, true},
	}
	for _, tt := range tests {
		vars := map[string]string{
			"ROOMLOG_FRONTEND_URL": "http://localhost:3000",
			"ROOMLOG_JWT_SECRET":   strings.Repeat("s", 32),
		}
		if tt.value != "" {
			vars["ROOMLOG_TAIL_ONLY"] = tt.value
		}
		c, err := LoadConfig(func(k string) string { return vars[k] }, nil)
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), "ROOMLOG_TAIL_ONLY") {
				t.Errorf("ROOMLOG_TAIL_ONLY=%q: error %v, want one naming the variable", tt.value, err)
			}
			continue
		}
		if err != nil || c.TailOnly != tt.want {
			t.Errorf("ROOMLOG_TAIL_ONLY=%q: TailOnly %v, %v; want %v", tt.value, c.TailOnly, err, tt.want)
		}
	}
}
