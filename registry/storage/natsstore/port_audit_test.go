package natsstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestAuditAppendQueryPrune(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	s := openTest(t, &Options{Now: clk.Now})
	for i := range 25 {
		e := AuditEntry{Actor: fmt.Sprintf("key_%d", i%3), Action: "POST /v1/connections", Target: fmt.Sprintf("connector:c%d connection:x%d", i%2, i), Outcome: "allowed", Status: 201}
		if err := s.AppendAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
	}
	// Paging newest first, 10 at a time, sees every entry once.
	var seen []AuditEntry
	var cur uint64
	for range 10 {
		page, next, err := s.Audit(ctx, AuditQuery{Limit: 10, Before: cur})
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, page...)
		if next == 0 {
			break
		}
		cur = next
	}
	if len(seen) != 25 || seen[0].Target != "connector:c0 connection:x24" || seen[24].Target != "connector:c0 connection:x0" {
		t.Fatalf("paged %d entries, first %+v", len(seen), seen[0])
	}
	for name, q := range map[string]struct {
		q    AuditQuery
		want int
	}{
		"actor":          {AuditQuery{Actor: "key_1"}, 8},
		"whole target":   {AuditQuery{Target: "connector:c1 connection:x3"}, 1},
		"target part":    {AuditQuery{Target: "connector:c1"}, 12},
		"since":          {AuditQuery{Since: clk.Now().Add(-5 * time.Minute)}, 5},
		"nothing":        {AuditQuery{Actor: "key_9"}, 0},
		"since and part": {AuditQuery{Since: clk.Now().Add(-5 * time.Minute), Target: "connection:x24"}, 1},
	} {
		got, _, err := s.Audit(ctx, q.q)
		if err != nil || len(got) != q.want {
			t.Errorf("%s: %d entries, %v; want %d", name, len(got), err, q.want)
		}
	}
	// Prune by count, then by age.
	if n, err := s.PruneAudit(ctx, 0, 20); n != 5 || err != nil {
		t.Fatalf("prune by count removed %d, %v", n, err)
	}
	if n, err := s.PruneAudit(ctx, 10*time.Minute, 0); n != 10 || err != nil {
		t.Fatalf("prune by age removed %d, %v", n, err)
	}
	got, _, _ := s.Audit(ctx, AuditQuery{Limit: 100})
	if len(got) != 10 || got[9].Target != "connector:c1 connection:x15" {
		t.Fatalf("after pruning: %d entries, oldest %+v", len(got), got[len(got)-1])
	}
}

func TestAPIKeysCRUD(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	k := APIKey{ID: "key_a", Name: "app", Role: "invoker", Connections: []string{"gh"}, SecretHash: "sha256:00"}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAPIKey(ctx, k); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	got, err := s.APIKey(ctx, "key_a")
	if err != nil || got.Role != "invoker" || got.Connections[0] != "gh" || got.CreatedAt.IsZero() || !got.ExpiresAt.IsZero() {
		t.Fatalf("APIKey = %+v, %v", got, err)
	}
	if all, err := s.APIKeys(ctx); len(all) != 1 || err != nil {
		t.Fatalf("APIKeys = %v, %v", all, err)
	}
	if err := s.DeleteAPIKey(ctx, "key_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.APIKey(ctx, "key_a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := s.DeleteAPIKey(ctx, "key_a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}
