package domain_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/roomlog/roomlog/domain"
)

// FuzzEntityFold checks that entity refs and folds never fail on whatever
// the log holds, and that every ref they report could name its entity.
func FuzzEntityFold(f *testing.F) {
	h, _ := requestLifecycle()
	for _, d := range h.out {
		f.Add(d.Type, string(d.Room), string(d.Payload))
	}
	f.Add("seller-offer-update", "seller-s1", `{"requestId":"r1","data":[1],"eventType":7}`)
	f.Add("new-offer", "request-r1", `{"requestId":"r1","offer":"not an object"}`)
	f.Add("template-checkout-payment-confirmed", "global", `{"checkoutId":"r1","requestIds":{"a":1}}`)
	f.Fuzz(func(t *testing.T, typ, room, payload string) {
		refs := domain.EntityRefs(typ, domain.Room(room), json.RawMessage(payload))
		for _, r := range refs {
			if _, err := domain.ParseEntityRef(string(r.Kind), r.ID); err != nil {
				t.Fatalf("EntityRefs reported %v: %v", r, err)
			}
		}
		d := domain.Delivery{
			Event: domain.Event{ID: "e1", Type: typ, Payload: json.RawMessage(payload), OccurredAt: time.Unix(0, 0)},
			Room:  domain.Room(room), Seq: 1, Position: domain.Position{Txid: 1, ID: 1},
		}
		for _, k := range domain.EntityKinds() {
			for _, id := range []string{"r1", "p1", "c1", "t1", "s1"} {
				st := domain.NewEntityState(domain.EntityRef{Kind: k, ID: id})
				st.Apply(d)
				st.Apply(d)
				if _, err := json.Marshal(st); err != nil {
					t.Fatalf("%s/%s state does not marshal: %v", k, id, err)
				}
			}
		}
	})
}
