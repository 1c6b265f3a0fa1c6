package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
)

// BenchmarkCatchUpPage is one GET /api/v1/rooms/{room}/events page of 1,
// 1,000 or 10,000 events with ~200-byte payloads, as roomlog-bench's
// scenario (e) reads them: authentication, the read, encoding, and the transfer over a
// loopback connection to a client that reads (but does not decode) the
// body.
func BenchmarkCatchUpPage(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bundle := setup(b, &setupOptions{noMembership: true})
			pad := strings.Repeat("x", 160)
			for done := 0; done < n; done += 1000 {
				reqs := make([]eventstore.AppendRequest, min(1000, n-done))
				for i := range reqs {
					reqs[i] = eventstore.AppendRequest{
						Type: "x-bench", Rooms: []domain.Room{"user-bench"}, Producer: "market",
						Payload: fmt.Appendf(nil, `{"t":%d,"pad":"%s"}`, done+i, pad),
					}
				}
				if _, err := bundle.store.AppendBatch(context.Background(), reqs); err != nil {
					b.Fatal(err)
				}
			}
			req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/api/v1/rooms/user-bench/events?after=0&limit=%d", bundle.srv.URL, n), nil)
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token(b, "bench-reader", domain.RoleAdmin))
			client := bundle.srv.Client()
			b.ReportAllocs()
			for b.Loop() {
				res, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				size, err := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if err != nil || res.StatusCode != http.StatusOK {
					b.Fatalf("HTTP %d, %v", res.StatusCode, err)
				}
				b.SetBytes(size)
			}
		})
	}
}
