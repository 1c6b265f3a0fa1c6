package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/eventstoretest"
	"github.com/roomlog/roomlog/projector"
)

// queryClock is the log's clock in these tests: it stays where set puts it.
type queryClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *queryClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *queryClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// queryLog is a log seeded for the query tests.
type queryLog struct {
	url   string
	store *eventstore.Store
	// at maps step names to the time the log accepted them.
	at map[string]time.Time
	// ids maps step names to event ids.
	ids map[string]string
}

// bulkEvents is how many events seedQueryLog appends to user-bulk, so
// that queries page more than once.
const bulkEvents = eventstore.MaxReadLimit + 200

// marketDeliveries is how many deliveries the marketplace steps make.
const marketDeliveries = 13

// seedQueryLog appends a purchase from request to completion, a
// notification and an extension note, one minute apart from 09:00 on
// 2025-03-01, then bulkEvents notifications to user-bulk, and runs the
// entity projection over all of it.
func seedQueryLog(t *testing.T) *queryLog {
	t.Helper()
	ctx := context.Background()
	u := eventstoretest.NewURL(t)
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	clock := &queryClock{}
	s := eventstore.New(pool, nil, &eventstore.Config{Now: clock.now})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	l := &queryLog{url: u, store: s, at: map[string]time.Time{}, ids: map[string]string{}}
	now := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	steps := []struct{ name, producer, typ, payload string }{
		{"request", "market", "new-purchase-request", `{"_id":"r1","buyerId":"b1","title":"Desk lamp"}`},
		{"offer", "market", "new-offer", `{"requestId":"r1","sellerId":"s1","offer":{"_id":"o1","price":"35.00"}}`},
		{"accepted", "market", "seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"offer-accepted","data":{"offerId":"o1","isSelected":true}}`},
		{"paymentCreated", "billing", "payment-created", `{"paymentId":"pay_1","provider":"shkeeper","requestId":"r1","buyerId":"b1","sellerId":"s1","amount":"35.00","currency":"USDT"}`},
		{"paymentConfirmed", "billing", "payment-update", `{"paymentId":"pay_1","status":"confirmed","escrowState":"held","txHash":"0xfeed"}`},
		{"paid", "market", "seller-offer-update", `{"sellerId":"s1","requestId":"r1","eventType":"payment-completed","data":{"offerId":"o1","isSelected":true,"paymentId":"pay_1","transactionHash":"0xfeed"}}`},
		{"shipped", "market", "delivery-update", `{"requestId":"r1","status":"shipped","carrier":"DHL","trackingNumber":"JD014600"}`},
		{"delivered", "market", "delivery-confirmed", `{"requestId":"r1"}`},
		{"notified", "notify", "new-notification", `{"notification":{"_id":"n1","type":"delivery","title":"Tom & Jerry <3","body":"delivered","createdAt":"2025-03-01T09:09:00Z"}}`},
		{"completed", "market", "transaction-completed", `{"requestId":"r1","paymentId":"pay_1","amount":"35.00","currency":"USDT"}`},
		{"note", "ops", "x-note", `{"text":"a, \"quoted\"\nline"}`},
	}
	rooms := map[string][]domain.Room{
		"request": {"sellers"}, "offer": {"buyer-b1"}, "accepted": {"seller-s1"}, "paymentCreated": {"global"},
		"paymentConfirmed": {"global", "request-r1"}, "paid": {"seller-s1"}, "shipped": {"request-r1"},
		"delivered": {"request-r1"}, "notified": {"user-b1"}, "completed": {"user-b1", "user-s1"}, "note": {"global"},
	}
	for _, st := range steps {
		now = now.Add(time.Minute)
		clock.set(now)
		if err := domain.ValidatePublish(st.typ, rooms[st.name], json.RawMessage(st.payload)); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		res, err := s.Append(ctx, eventstore.AppendRequest{Type: st.typ, Rooms: rooms[st.name], Payload: json.RawMessage(st.payload), Producer: st.producer})
		if err != nil {
			t.Fatal(err)
		}
		l.at[st.name], l.ids[st.name] = now, res.EventID
	}
	now = now.Add(time.Minute)
	clock.set(now)
	l.at["bulk"] = now
	bulk := make([]eventstore.AppendRequest, bulkEvents)
	for i := range bulk {
		bulk[i] = eventstore.AppendRequest{Type: "unread-count-update", Rooms: []domain.Room{"user-bulk"}, Producer: "notify",
			Payload: json.RawMessage(fmt.Sprintf(`{"unreadCount":%d}`, i+1))}
	}
	if _, err := s.AppendBatch(ctx, bulk); err != nil {
		t.Fatal(err)
	}
	indexEntities(t, s)
	return l
}

// indexEntities runs the entity projection until it has indexed the whole
// log. Reading the log's tail waits for the cluster's oldest running
// transaction, so it retries; once it is done, every appended row is
// visible to audit queries too.
func indexEntities(t *testing.T, s *eventstore.Store) {
	t.Helper()
	ctx := context.Background()
	reg, err := projector.NewRegistry(projector.RegistryConfig{Store: s})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := reg.CatchUp(ctx, projector.EntitiesName); err != nil {
			t.Fatal(err)
		}
		sts, err := s.ProjectionStatus(ctx, projector.EntitiesName)
		if err != nil {
			t.Fatal(err)
		}
		if sts[0].Saved && sts[0].Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("entity projection: %+v", sts[0])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ndjsonEvents decodes NDJSON output.
func ndjsonEvents(t *testing.T, out string) []eventJSON {
	t.Helper()
	var evs []eventJSON
	for _, l := range lines(out) {
		var ev eventJSON
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func eventRows(evs []eventJSON) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = fmt.Sprintf("%s/%d %s", e.Room, e.Seq, e.Event)
	}
	return out
}

func TestCmdQuery(t *testing.T) {
	t.Parallel()
	l := seedQueryLog(t)
	market := []string{
		"sellers/1 new-purchase-request", "buyer-b1/1 new-offer", "seller-s1/1 seller-offer-update",
		"global/1 payment-created", "global/2 payment-update", "request-r1/1 payment-update",
		"seller-s1/2 seller-offer-update", "request-r1/2 delivery-update", "request-r1/3 delivery-confirmed",
		"user-b1/1 new-notification", "user-b1/2 transaction-completed", "user-s1/1 transaction-completed", "global/3 x-note",
	}
	if len(market) != marketDeliveries {
		t.Fatal("market lists the wrong number of deliveries")
	}
	query := func(t *testing.T, args ...string) result {
		t.Helper()
		r := runCLI(t, l.url, "", append([]string{"query"}, args...)...)
		if r.code != 0 {
			t.Fatalf("query %v: %+v", args, r)
		}
		return r
	}

	t.Run("All", func(t *testing.T) {
		t.Parallel()
		evs := ndjsonEvents(t, query(t).stdout)
		if len(evs) != marketDeliveries+bulkEvents || !slices.Equal(eventRows(evs[:marketDeliveries]), market) {
			t.Fatalf("%d events, first %v", len(evs), eventRows(evs[:min(len(evs), marketDeliveries)]))
		}
		for i, e := range evs[marketDeliveries:] {
			if e.Room != "user-bulk" || e.Seq != int64(i+1) {
				t.Fatalf("bulk event %d is %s/%d", i, e.Room, e.Seq)
			}
		}
		// The same objects as tail prints, payloads byte for byte as
		// stored (no HTML escaping) and times in UTC.
		tail := ndjsonEvents(t, runCLI(t, l.url, "", "tail", "-from-beginning", "-follow=false", "-max", "13").stdout)
		for i, e := range evs[:marketDeliveries] {
			tl := tail[i]
			if e.ID != tl.ID || e.Room != tl.Room || e.Seq != tl.Seq || e.Event != tl.Event || e.Producer != tl.Producer || !e.At.Equal(tl.At) {
				t.Errorf("query %+v\ntail  %+v", e, tl)
			}
		}
		if n := evs[9]; string(n.Payload) != `{"notification":{"_id":"n1","type":"delivery","title":"Tom & Jerry <3","body":"delivered","createdAt":"2025-03-01T09:09:00Z"}}` ||
			n.Producer != "notify" || !n.At.Equal(l.at["notified"]) || n.At.Location() != time.UTC || n.ID != l.ids["notified"] {
			t.Errorf("notification %+v", n)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			args []string
			want []string
		}{
			{"Room", []string{"-room", "request-r1"}, []string{"request-r1/1 payment-update", "request-r1/2 delivery-update", "request-r1/3 delivery-confirmed"}},
			{"Event", []string{"-event", "payment-update"}, []string{"global/2 payment-update", "request-r1/1 payment-update"}},
			{"Events", []string{"-event", "new-offer", "-event", "x-note"}, []string{"buyer-b1/1 new-offer", "global/3 x-note"}},
			{"Producer", []string{"-producer", "billing"}, []string{"global/1 payment-created", "global/2 payment-update", "request-r1/1 payment-update"}},
			{"EventID", []string{"-event-id", l.ids["completed"]}, []string{"user-b1/2 transaction-completed", "user-s1/1 transaction-completed"}},
			{"EventIDUpperCase", []string{"-event-id", strings.ToUpper(l.ids["note"])}, []string{"global/3 x-note"}},
			{"Since", []string{"-since", l.at["completed"].Format(time.RFC3339), "-room", "global"}, []string{"global/3 x-note"}},
			{"Until", []string{"-until", l.at["offer"].Format(time.RFC3339)}, []string{"sellers/1 new-purchase-request"}},
			{"Window", []string{"-since", "2025-03-01T09:04:00Z", "-until", "2025-03-01T10:06:00+01:00"}, []string{"global/1 payment-created", "global/2 payment-update", "request-r1/1 payment-update"}},
			{"Contains", []string{"-contains", `{"requestId":"r1"}`, "-producer", "market"}, []string{"buyer-b1/1 new-offer", "seller-s1/1 seller-offer-update", "seller-s1/2 seller-offer-update", "request-r1/2 delivery-update", "request-r1/3 delivery-confirmed", "user-b1/2 transaction-completed", "user-s1/1 transaction-completed"}},
			{"ContainsNested", []string{"-contains", `{"data":{"paymentId":"pay_1"}}`}, []string{"seller-s1/2 seller-offer-update"}},
			{"Limit", []string{"-limit", "2"}, market[:2]},
			{"InjectionIsData", []string{"-contains", `{"requestId":"' OR '1'='1"}`}, []string{}},
			{"NoMatch", []string{"-room", "user-nobody"}, []string{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				r := query(t, tt.args...)
				if got := eventRows(ndjsonEvents(t, r.stdout)); !slices.Equal(got, tt.want) {
					t.Errorf("%v: %v, want %v", tt.args, got, tt.want)
				}
			})
		}
	})

	t.Run("Paging", func(t *testing.T) {
		t.Parallel()
		// More than one page, then a limit that ends inside the second.
		if n := len(lines(query(t, "-room", "user-bulk").stdout)); n != bulkEvents {
			t.Errorf("user-bulk: %d events, want %d", n, bulkEvents)
		}
		evs := ndjsonEvents(t, query(t, "-room", "user-bulk", "-limit", "1050").stdout)
		if len(evs) != 1050 || evs[1049].Seq != 1050 {
			t.Errorf("-limit 1050: %d events", len(evs))
		}
	})

	t.Run("CSV", func(t *testing.T) {
		t.Parallel()
		r := query(t, "-format", "csv", "-room", "global")
		recs, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 4 || !slices.Equal(recs[0], []string{"id", "room", "seq", "event", "at", "producer", "payload"}) {
			t.Fatalf("csv %q", recs)
		}
		note := recs[3]
		want := []string{l.ids["note"], "global", "3", "x-note", l.at["note"].Format(time.RFC3339Nano), "ops", `{"text":"a, \"quoted\"\nline"}`}
		if !slices.Equal(note, want) {
			t.Errorf("row %q, want %q", note, want)
		}
		// An empty result is the header alone.
		if r := query(t, "-format", "csv", "-room", "user-nobody"); r.stdout != "id,room,seq,event,at,producer,payload\n" {
			t.Errorf("empty csv %q", r.stdout)
		}
	})

	t.Run("Entity", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		storeRows := func(ref domain.EntityRef, at time.Time) []string {
			var rows []string
			for d, err := range l.store.EntityHistory(ctx, ref, at) {
				if err != nil {
					t.Fatal(err)
				}
				rows = append(rows, fmt.Sprintf("%s/%d %s", d.Room, d.Seq, d.Type))
			}
			return rows
		}
		tests := []struct {
			name, entity string
			at           time.Time
			want         int
		}{
			{"Request", "request:r1", time.Time{}, 11},
			{"RequestAtAcceptance", "request:r1", l.at["accepted"], 3},
			{"RequestBeforeAnything", "request:r1", l.at["request"].Add(-time.Second), 0},
			{"Payment", "payment:pay_1", time.Time{}, 6},
			{"PaymentAtConfirmation", "payment:pay_1", l.at["paymentConfirmed"], 3},
			{"Unknown", "chat:none", time.Time{}, 0},
		}
		for _, tt := range tests {
			args := []string{"-entity", tt.entity}
			if !tt.at.IsZero() {
				args = append(args, "-at", tt.at.Format(time.RFC3339Nano))
			}
			r := query(t, args...)
			kind, id, _ := strings.Cut(tt.entity, ":")
			want := storeRows(domain.EntityRef{Kind: domain.EntityKind(kind), ID: id}, tt.at)
			got := eventRows(ndjsonEvents(t, r.stdout))
			if len(got) != tt.want || !slices.Equal(got, want) {
				t.Errorf("%s: %v, want %d: %v", tt.name, got, tt.want, want)
			}
			if r.stderr != "" {
				t.Errorf("%s: stderr %q", tt.name, r.stderr)
			}
		}
		if n := len(lines(query(t, "-entity", "request:r1", "-limit", "2").stdout)); n != 2 {
			t.Errorf("-limit 2: %d lines", n)
		}
		recs, err := csv.NewReader(strings.NewReader(query(t, "-entity", "payment:pay_1", "-format", "csv").stdout)).ReadAll()
		if err != nil || len(recs) != 7 || recs[0][0] != "id" || recs[1][3] != "payment-created" {
			t.Errorf("entity csv %q %v", recs, err)
		}
	})

	t.Run("EntityState", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			at    string
			phase domain.RequestPhase
			pay   string
		}{
			{"offer", domain.PhaseOffered, ""},
			{"accepted", domain.PhaseAccepted, ""},
			{"paymentConfirmed", domain.PhaseAccepted, "confirmed"},
			{"paid", domain.PhasePaid, "confirmed"},
			{"delivered", domain.PhaseDelivered, "confirmed"},
			{"", domain.PhaseCompleted, "confirmed"},
		}
		for _, tt := range tests {
			args := []string{"-entity", "request:r1", "-state"}
			if tt.at != "" {
				args = append(args, "-at", l.at[tt.at].Format(time.RFC3339))
			}
			r := query(t, args...)
			var st domain.RequestState
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			if err := dec.Decode(&st); err != nil || dec.More() {
				t.Fatalf("-state at %s is not one JSON document: %v\n%s", tt.at, err, r.stdout)
			}
			var pay string
			if len(st.Payments) > 0 {
				pay = st.Payments[0].Status
			}
			if st.RequestID != "r1" || st.Phase != tt.phase || pay != tt.pay {
				t.Errorf("at %s: phase %s, payment %q; want %s, %q", tt.at, st.Phase, pay, tt.phase, tt.pay)
			}
		}
		// The state is the store's fold, printed as is.
		st, err := l.store.EntityState(context.Background(), domain.EntityRef{Kind: domain.EntityChat, ID: "none"}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.MarshalIndent(st, "", "  ")
		if got := query(t, "-entity", "chat:none", "-state").stdout; got != string(want)+"\n" {
			t.Errorf("chat:none state %s, want %s", got, want)
		}
	})
}

// TestCmdQueryIndexBehind queries an entity on a log whose entity
// projection never ran: the (empty) answer comes with a warning.
func TestCmdQueryIndexBehind(t *testing.T) {
	t.Parallel()
	u := eventstoretest.NewURL(t)
	r := runCLI(t, u, "", "publish", "-event", "delivery-confirmed", "-room", "request-r1", "-payload", `{"requestId":"r1"}`)
	if r.code != 0 {
		t.Fatalf("publish: %+v", r)
	}
	r = runCLI(t, u, "", "query", "-entity", "request:r1")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, `warning: the entity index (projection "entities")`) {
		t.Fatalf("%+v", r)
	}
	// A plain audit query reads the log itself and needs no index.
	checkForCLI(t, func() error {
		r := runCLI(t, u, "", "query", "-room", "request-r1")
		if r.code != 0 || len(lines(r.stdout)) != 1 || r.stderr != "" {
			return fmt.Errorf("%+v", r)
		}
		return nil
	})
}

// checkForCLI retries f for up to 20 seconds: audit queries see a row once
// every transaction older than it has ended, cluster-wide.
func checkForCLI(t *testing.T, f func() error) {
	t.Helper()
	eventstoretest.CheckFor(t, 20*time.Second, 20*time.Millisecond, f)
}

// TestCmdQueryFlags checks flag errors without a database: invalid flags
// and combinations exit 2 with a message, bad filter values exit 1 naming
// the flag. None of them connects.
func TestCmdQueryFlags(t *testing.T) {
	t.Parallel()
	// A database that is not there: reaching it would fail differently.
	const nowhere = "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=1"
	usage := []struct {
		name string
		args []string
		msg  string
	}{
		{"UnknownFlag", []string{"-nope"}, "flag provided but not defined: -nope"},
		{"BadLimit", []string{"-limit", "abc"}, "invalid value"},
		{"NegativeLimit", []string{"-limit", "-1"}, "-limit must not be negative"},
		{"Format", []string{"-format", "xml"}, "-format must be ndjson or csv"},
		{"Argument", []string{"request-r1"}, `unexpected argument "request-r1"`},
		{"EntityAndFilter", []string{"-entity", "request:r1", "-room", "request-r1"}, "-entity cannot be combined"},
		{"AtWithoutEntity", []string{"-at", "2025-01-01T00:00:00Z"}, "-at and -state need -entity"},
		{"StateWithoutEntity", []string{"-state"}, "-at and -state need -entity"},
		{"StateWithFormat", []string{"-entity", "request:r1", "-state", "-format", "csv"}, "-state prints one JSON document"},
		{"StateWithLimit", []string{"-entity", "request:r1", "-state", "-limit", "3"}, "-state prints one JSON document"},
		{"Help", []string{"-h"}, "roomlog query -entity KIND:ID"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nowhere, "", append([]string{"query"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.msg) || r.stdout != "" {
				t.Fatalf("%v: %+v, want exit 2 saying %q", tt.args, r, tt.msg)
			}
		})
	}
	bad := []struct {
		name string
		args []string
		flag string
	}{
		{"Room", []string{"-room", "nope"}, "-room"},
		{"RoomInjection", []string{"-room", "' OR '1'='1"}, "-room"},
		{"Event", []string{"-event", "x'); DROP TABLE events; --"}, "-event"},
		{"TooManyEvents", slices.Repeat([]string{"-event", "x-a"}, eventstore.MaxAuditTypes+1), "-event"},
		{"Producer", []string{"-producer", "' OR 1=1 --"}, "-producer"},
		{"EventID", []string{"-event-id", "1"}, "-event-id"},
		{"Since", []string{"-since", "yesterday"}, "-since"},
		{"UntilDateOnly", []string{"-until", "2025-01-02"}, "-until"},
		{"Window", []string{"-since", "2025-01-02T00:00:00Z", "-until", "2025-01-01T00:00:00Z"}, "-until: must be after -since"},
		{"ContainsArray", []string{"-contains", "[1]"}, "-contains"},
		{"ContainsBroken", []string{"-contains", `{"a":`}, "-contains"},
		{"ContainsTooLarge", []string{"-contains", `{"a":"` + strings.Repeat("x", eventstore.MaxContainsBytes) + `"}`}, "-contains"},
		{"EntityNoColon", []string{"-entity", "r1"}, "-entity"},
		{"EntityKind", []string{"-entity", "order:r1"}, "-entity: kind"},
		{"EntityID", []string{"-entity", "request:r 1"}, "-entity: id"},
		{"EntityEmptyID", []string{"-entity", "chat:"}, "-entity: id"},
		{"At", []string{"-entity", "request:r1", "-at", "noon"}, "-at"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, nowhere, "", append([]string{"query"}, tt.args...)...)
			if r.code != 1 || !strings.HasPrefix(r.stderr, "roomlog query: "+tt.flag) || strings.Contains(r.stderr, "connect") {
				t.Fatalf("%v: %+v, want exit 1 naming %s", tt.args, r, tt.flag)
			}
		})
	}
	t.Run("DatabaseDown", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"query"}, {"query", "-entity", "request:r1"}} {
			if r := runCLI(t, nowhere, "", args...); r.code != 1 || !strings.Contains(r.stderr, "connect") {
				t.Errorf("%v: %+v", args, r)
			}
		}
	})
}
