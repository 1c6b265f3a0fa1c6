package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/roomlog/roomlog/domain"
)

// DefaultPublishRate is how many publish requests per second one API key
// may make by default; a batch of up to MaxBatchEvents events is one
// request.
const DefaultPublishRate = 1000

// RateLimit bounds publish requests per API key with a token bucket: a key
// may make Burst requests at once and Rate per second after that. A
// request over the limit answers 429 with Retry-After and the error code
// rate_limited; nothing is appended. Its zero value means the defaults.
type RateLimit struct {
	// Rate is the sustained publish requests per second per key. Default
	// DefaultPublishRate; negative disables the limit.
	Rate float64
	// Burst is how many requests a key may make at once. Default 2 × Rate
	// (at least 1).
	Burst int
}

// WithDefaults returns r with zero fields replaced by their defaults. r
// may be nil.
func (r *RateLimit) WithDefaults() RateLimit {
	var out RateLimit
	if r != nil {
		out = *r
	}
	if out.Rate == 0 {
		out.Rate = DefaultPublishRate
	}
	if out.Burst == 0 {
		out.Burst = max(1, int(math.Ceil(2*out.Rate)))
	}
	return out
}

func (r RateLimit) validate() error {
	if r.Rate > 0 && r.Burst < 1 {
		return fmt.Errorf("RateLimit.Burst must be at least 1, got %d", r.Burst)
	}
	return nil
}

// keyBuckets is a token bucket per key. Safe for concurrent use.
type keyBuckets struct {
	rate    float64 // tokens per second; ≤ 0 means unlimited
	burst   float64
	mu      sync.Mutex
	buckets map[string]*bucket
	now     func() time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxTrackedKeys bounds the bucket map; full buckets are forgotten first
// (a full bucket is the same as no bucket).
const maxTrackedKeys = 10_000

func newKeyBuckets(r RateLimit) *keyBuckets {
	return &keyBuckets{rate: r.Rate, burst: float64(r.Burst), buckets: map[string]*bucket{}, now: time.Now}
}

// take takes one token of key's bucket. If none is left it reports false
// and how long until one is.
func (k *keyBuckets) take(key string) (bool, time.Duration) {
	if k == nil || k.rate <= 0 {
		return true, 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= maxTrackedKeys {
			k.forgetFullLocked(now)
		}
		b = &bucket{tokens: k.burst, at: now}
		k.buckets[key] = b
	}
	b.tokens = min(k.burst, b.tokens+now.Sub(b.at).Seconds()*k.rate)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / k.rate * float64(time.Second))
	return false, wait
}

func (k *keyBuckets) forgetFullLocked(now time.Time) {
	for key, b := range k.buckets {
		if b.tokens+now.Sub(b.at).Seconds()*k.rate >= k.burst {
			delete(k.buckets, key)
		}
	}
}

// limitPublish is the publish route's rate limit per API key. A request
// without a valid key passes through, so that publish answers it 401 as
// usual.
func (s *Server) limitPublish(c *gin.Context) {
	name, err := s.producer(c)
	if err != nil {
		c.Next()
		return
	}
	if ok, wait := s.publishLimit.take(name); !ok {
		writeRateLimited(s, c, wait, fmt.Sprintf("more than %g publish requests per second for this API key; retry later", s.publishLimit.rate))
		c.Abort()
		return
	}
	c.Next()
}

// writeRateLimited answers 429 in the error shape with Retry-After in
// whole seconds (at least 1).
func writeRateLimited(s *Server, c *gin.Context, wait time.Duration, msg string) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	c.Header("Retry-After", strconv.Itoa(secs))
	s.writeJSON(c, http.StatusTooManyRequests, errorBody{Error: errorDetail{Code: domain.CodeRateLimited, Message: msg}})
}
