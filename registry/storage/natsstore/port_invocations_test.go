package natsstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestInvocations(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, nil)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	if got, err := s.Invocations(ctx, "c_none"); err != nil || got != nil {
		t.Fatalf("before any write: %v %v", got, err)
	}
	if n, err := s.PruneInvocations(ctx, t0, 10); err != nil || n != 0 {
		t.Fatalf("prune before any write: %d %v", n, err)
	}
	var recs []Invocation
	for i := range 10 {
		recs = append(recs, Invocation{CorrelationID: fmt.Sprintf("c_%d", i%5), Time: t0.Add(time.Duration(i) * time.Minute), Document: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	// "c_1" and "c_10" share a prefix but not a length: they never mix.
	recs = append(recs, Invocation{CorrelationID: "c_10", Time: t0, Document: []byte(`{"i":"ten"}`)})
	if err := s.PutInvocations(ctx, recs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Invocations(ctx, "c_1")
	if err != nil || len(got) != 2 || string(got[0].Document) != `{"i":1}` || string(got[1].Document) != `{"i":6}` || !got[1].Time.Equal(t0.Add(6*time.Minute)) {
		t.Fatalf("c_1 = %+v, %v; want the records 1 and 6, oldest first", got, err)
	}

	for _, tt := range []struct {
		name   string
		before time.Time
		keep   int
		pruned int
	}{
		{"nothing is older than the first record", t0, 0, 0},
		{"older than 12:03 goes (and c_10 of 12:00)", t0.Add(3 * time.Minute), 0, 4},
		{"then all but the newest 4", t0, 4, 3},
	} {
		n, err := s.PruneInvocations(ctx, tt.before, tt.keep)
		if err != nil || n != tt.pruned {
			t.Errorf("%s: pruned %d (%v), want %d", tt.name, n, err, tt.pruned)
		}
	}
	var left []string
	for i := range 5 {
		for _, r := range mustInvocations(t, s, fmt.Sprintf("c_%d", i)) {
			left = append(left, string(r.Document))
		}
	}
	if fmt.Sprint(left) != `[{"i":6} {"i":7} {"i":8} {"i":9}]` {
		t.Errorf("left %v, want records 6 to 9", left)
	}
	if got := mustInvocations(t, s, "c_10"); len(got) != 0 {
		t.Errorf("c_10 survived: %v", got)
	}

	if err := s.PutInvocations(ctx, []Invocation{{CorrelationID: "", Time: t0}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty id: %v", err)
	}
	if err := s.PutInvocations(ctx, []Invocation{{CorrelationID: "c", Time: time.Time{}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("zero time: %v", err)
	}
}

func mustInvocations(t *testing.T, s *Store, id string) []Invocation {
	t.Helper()
	got, err := s.Invocations(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
