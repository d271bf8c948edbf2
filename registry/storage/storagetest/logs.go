package storagetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

func appendAudit(t *testing.T, st storage.Store, e storage.AuditEntry) {
	t.Helper()
	ok(t, st.AppendAudit(ctx(t), e), "AppendAudit %+v", e)
}

func actions(es []storage.AuditEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Action)
	}
	return out
}

// auditCases are the promises of [storage.Audit]: newest first, filters, paging by cursor and
// pruning by age and count.
var auditCases = []testCase{
	{"entries come back newest first, with their fields and a sequence", func(t *testing.T, st storage.Store) {
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		for i := range 3 {
			appendAudit(t, st, storage.AuditEntry{Time: base.Add(time.Duration(i) * time.Minute), Actor: "key_a", Role: "admin",
				Action: fmt.Sprintf("a%d", i), Target: "connector:github", Outcome: "allowed", Status: 200, CorrelationID: fmt.Sprintf("corr-%d", i)})
		}
		got, next, err := st.Audit(ctx(t), storage.AuditQuery{})
		ok(t, err, "Audit")
		if !slices.Equal(actions(got), []string{"a2", "a1", "a0"}) || next != 0 {
			t.Fatalf("Audit = %v, next %d; want [a2 a1 a0] and no next page", actions(got), next)
		}
		e := got[2]
		if !e.Time.Equal(base) || e.Actor != "key_a" || e.Role != "admin" || e.Target != "connector:github" || e.Outcome != "allowed" || e.Status != 200 || e.CorrelationID != "corr-0" {
			t.Fatalf("oldest entry = %+v", e)
		}
		if got[0].Seq == 0 || got[0].Seq <= got[1].Seq || got[1].Seq <= got[2].Seq {
			t.Fatalf("sequences %d, %d, %d: want increasing with the appends, never 0", got[0].Seq, got[1].Seq, got[2].Seq)
		}
		appendAudit(t, st, storage.AuditEntry{Action: "now"})
		got, _, _ = st.Audit(ctx(t), storage.AuditQuery{Limit: 1})
		if len(got) != 1 || got[0].Action != "now" || got[0].Time.IsZero() || time.Since(got[0].Time) > time.Hour {
			t.Fatalf("an entry without a time = %+v, want its time set to now", got)
		}
	}},
	{"filters: actor, target part and since", func(t *testing.T, st storage.Store) {
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		entries := []storage.AuditEntry{
			{Time: base, Actor: "key_a", Action: "e0", Target: "connector:github connection:gh-main"},
			{Time: base.Add(1 * time.Minute), Actor: "key_b", Action: "e1", Target: "connection:gh-main"},
			{Time: base.Add(2 * time.Minute), Actor: "key_a", Action: "e2", Target: "connector:slack"},
			{Time: base.Add(3 * time.Minute), Actor: "", Action: "e3", Target: "connection:gh-main-2"},
		}
		for _, e := range entries {
			appendAudit(t, st, e)
		}
		for _, c := range []struct {
			name string
			q    storage.AuditQuery
			want []string
		}{
			{"actor", storage.AuditQuery{Actor: "key_a"}, []string{"e2", "e0"}},
			{"target part", storage.AuditQuery{Target: "connection:gh-main"}, []string{"e1", "e0"}},
			{"whole target", storage.AuditQuery{Target: "connector:slack"}, []string{"e2"}},
			{"since", storage.AuditQuery{Since: base.Add(2 * time.Minute)}, []string{"e3", "e2"}},
			{"actor and target", storage.AuditQuery{Actor: "key_a", Target: "connection:gh-main"}, []string{"e0"}},
			{"since and target part", storage.AuditQuery{Since: base.Add(time.Minute), Target: "connection:gh-main"}, []string{"e1"}},
			{"an actor without entries", storage.AuditQuery{Actor: "key_z"}, nil},
		} {
			got, _, err := st.Audit(ctx(t), c.q)
			ok(t, err, "Audit %s", c.name)
			if !slices.Equal(actions(got), c.want) {
				t.Errorf("%s: Audit = %v, want %v", c.name, actions(got), c.want)
			}
		}
	}},
	{"paging with Limit and the next cursor", func(t *testing.T, st storage.Store) {
		base := time.Now().Add(-time.Hour).UTC()
		for i := range 7 {
			appendAudit(t, st, storage.AuditEntry{Time: base.Add(time.Duration(i) * time.Second), Action: fmt.Sprintf("a%d", i), Actor: []string{"x", "y"}[i%2]})
		}
		var pages [][]string
		q := storage.AuditQuery{Limit: 3}
		for range 10 {
			got, next, err := st.Audit(ctx(t), q)
			ok(t, err, "Audit page")
			pages = append(pages, actions(got))
			if next == 0 {
				break
			}
			q.Before = next
		}
		if fmt.Sprint(pages) != "[[a6 a5 a4] [a3 a2 a1] [a0]]" {
			t.Fatalf("pages = %v, want [[a6 a5 a4] [a3 a2 a1] [a0]]", pages)
		}
		// Paging with a filter pages over the matching entries only.
		pages = nil
		q = storage.AuditQuery{Limit: 2, Actor: "x"}
		for range 10 {
			got, next, err := st.Audit(ctx(t), q)
			ok(t, err, "Audit page")
			pages = append(pages, actions(got))
			if next == 0 {
				break
			}
			q.Before = next
		}
		if fmt.Sprint(pages) != "[[a6 a4] [a2 a0]]" {
			t.Fatalf("filtered pages = %v, want [[a6 a4] [a2 a0]]", pages)
		}
	}},
	{"prune by age and by count", func(t *testing.T, st storage.Store) {
		now := time.Now().UTC()
		for i := range 4 {
			appendAudit(t, st, storage.AuditEntry{Time: now.Add(-48 * time.Hour).Add(time.Duration(i) * time.Minute), Action: fmt.Sprintf("old%d", i)})
		}
		for i := range 5 {
			appendAudit(t, st, storage.AuditEntry{Time: now.Add(-time.Duration(5-i) * time.Minute), Action: fmt.Sprintf("new%d", i)})
		}
		if n := must[int](t, "PruneAudit by age")(st.PruneAudit(ctx(t), 24*time.Hour, 0)); n != 4 {
			t.Fatalf("PruneAudit by age removed %d, want the 4 old entries", n)
		}
		if n := must[int](t, "PruneAudit by count")(st.PruneAudit(ctx(t), 0, 2)); n != 3 {
			t.Fatalf("PruneAudit to 2 entries removed %d, want 3", n)
		}
		got, _, err := st.Audit(ctx(t), storage.AuditQuery{})
		ok(t, err, "Audit")
		if !slices.Equal(actions(got), []string{"new4", "new3"}) {
			t.Fatalf("after pruning: %v, want the newest two", actions(got))
		}
		if n := must[int](t, "PruneAudit again")(st.PruneAudit(ctx(t), 24*time.Hour, 2)); n != 0 {
			t.Fatalf("a second prune removed %d", n)
		}
	}},
}

// invocationCases are the promises of [storage.Invocations]: records by correlation id, at
// most storage.MaxInvocationsPerID each, pruned by time and count.
var invocationCases = []testCase{
	{"records are read back by correlation id, oldest first", func(t *testing.T, st storage.Store) {
		base := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
		ok(t, st.PutInvocations(ctx(t), []storage.Invocation{
			{CorrelationID: "corr-a", Time: base, Document: []byte(`{"n":1}`)},
			{CorrelationID: "corr-b", Time: base.Add(time.Second), Document: []byte(`{"n":2}`)},
			{CorrelationID: "corr-a", Time: base.Add(2 * time.Second), Document: []byte(`{"n":3}`)},
		}), "PutInvocations")
		ok(t, st.PutInvocations(ctx(t), []storage.Invocation{{CorrelationID: "corr-a", Time: base.Add(3 * time.Second), Document: []byte(`{"n":4}`)}}), "PutInvocations")
		got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), "corr-a"))
		var docs []string
		for _, r := range got {
			docs = append(docs, string(r.Document))
			if r.CorrelationID != "corr-a" {
				t.Fatalf("record of %q under corr-a", r.CorrelationID)
			}
		}
		if !slices.Equal(docs, []string{`{"n":1}`, `{"n":3}`, `{"n":4}`}) {
			t.Fatalf("Invocations(corr-a) = %v", docs)
		}
		if !got[0].Time.Equal(base) {
			t.Fatalf("record time %v, want %v", got[0].Time, base)
		}
		if none := must[[]storage.Invocation](t, "Invocations unknown")(st.Invocations(ctx(t), "corr-x")); len(none) != 0 {
			t.Fatalf("Invocations of an unknown id = %v", none)
		}
		err := st.PutInvocations(ctx(t), []storage.Invocation{{CorrelationID: "ok", Time: base}, {CorrelationID: "", Time: base}})
		wantErr(t, err, storage.ErrInvalid, "PutInvocations with an empty correlation id")
		if got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), "ok")); len(got) != 0 {
			t.Fatal("a refused batch was partly written")
		}
	}},
	{"at most the newest MaxInvocationsPerID per id", func(t *testing.T, st storage.Store) {
		base := time.Now().Add(-time.Hour).UTC()
		var recs []storage.Invocation
		for i := range storage.MaxInvocationsPerID + 6 {
			recs = append(recs, storage.Invocation{CorrelationID: "corr", Time: base.Add(time.Duration(i) * time.Second), Document: fmt.Appendf(nil, `{"n":%d}`, i)})
		}
		ok(t, st.PutInvocations(ctx(t), recs), "PutInvocations")
		got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), "corr"))
		if len(got) != storage.MaxInvocationsPerID || string(got[0].Document) != `{"n":6}` || string(got[len(got)-1].Document) != fmt.Sprintf(`{"n":%d}`, storage.MaxInvocationsPerID+5) {
			t.Fatalf("got %d records from %s to %s, want the newest %d", len(got), got[0].Document, got[len(got)-1].Document, storage.MaxInvocationsPerID)
		}
	}},
	{"prune by time and by count", func(t *testing.T, st storage.Store) {
		now := time.Now().UTC()
		var recs []storage.Invocation
		for i := range 10 {
			recs = append(recs, storage.Invocation{CorrelationID: fmt.Sprintf("c%d", i), Time: now.Add(-time.Duration(10-i) * time.Hour), Document: []byte(`{}`)})
		}
		ok(t, st.PutInvocations(ctx(t), recs), "PutInvocations")
		// c0..c3 are 10 to 7 hours old.
		if n := must[int](t, "PruneInvocations by time")(st.PruneInvocations(ctx(t), now.Add(-6*time.Hour-time.Minute), 0)); n != 4 {
			t.Fatalf("PruneInvocations older than 6h01 removed %d, want 4", n)
		}
		if n := must[int](t, "PruneInvocations by count")(st.PruneInvocations(ctx(t), time.Time{}, 2)); n != 4 {
			t.Fatalf("PruneInvocations to 2 removed %d, want 4", n)
		}
		for i := range 10 {
			got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), fmt.Sprintf("c%d", i)))
			if want := i >= 8; (len(got) == 1) != want {
				t.Fatalf("c%d: %d records after pruning, want kept=%v", i, len(got), want)
			}
		}
	}},
	{"correlation ids that share a prefix never mix", func(t *testing.T, st storage.Store) {
		at := time.Now().Add(-time.Minute).UTC()
		ok(t, st.PutInvocations(ctx(t), []storage.Invocation{
			{CorrelationID: "c_1", Time: at, Document: []byte(`{"id":"c_1"}`)},
			{CorrelationID: "c_10", Time: at, Document: []byte(`{"id":"c_10"}`)},
			{CorrelationID: "c_", Time: at, Document: []byte(`{"id":"c_"}`)},
		}), "PutInvocations")
		for _, id := range []string{"c_1", "c_10", "c_"} {
			got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), id))
			if len(got) != 1 || string(got[0].Document) != `{"id":"`+id+`"}` {
				t.Fatalf("Invocations(%q) = %d records, want its one", id, len(got))
			}
		}
	}},
	{"PruneInvocations keeps a record at exactly before; an empty store prunes nothing", func(t *testing.T, st storage.Store) {
		at := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		if n := must[int](t, "PruneInvocations of an empty store")(st.PruneInvocations(ctx(t), at, 1)); n != 0 {
			t.Fatalf("PruneInvocations of an empty store removed %d", n)
		}
		ok(t, st.PutInvocations(ctx(t), []storage.Invocation{
			{CorrelationID: "old", Time: at.Add(-time.Millisecond), Document: []byte(`{}`)},
			{CorrelationID: "edge", Time: at, Document: []byte(`{}`)},
		}), "PutInvocations")
		if n := must[int](t, "PruneInvocations")(st.PruneInvocations(ctx(t), at, 0)); n != 1 {
			t.Fatalf("PruneInvocations before %v removed %d, want only the older record", at, n)
		}
		if got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), "edge")); len(got) != 1 {
			t.Fatalf("the record at exactly before: %d records, want it kept", len(got))
		}
	}},
	{"a record without a time is ErrInvalid", func(t *testing.T, st storage.Store) {
		err := st.PutInvocations(ctx(t), []storage.Invocation{{CorrelationID: "c", Document: []byte(`{}`)}})
		wantErr(t, err, storage.ErrInvalid, "PutInvocations with a zero time")
		if got := must[[]storage.Invocation](t, "Invocations")(st.Invocations(ctx(t), "c")); len(got) != 0 {
			t.Fatalf("the refused record was stored: %d records", len(got))
		}
	}},
}

// metaCases are the promises of [storage.Meta].
var metaCases = []testCase{
	{"set, get and replace; a missing key is ErrNotFound", func(t *testing.T, st storage.Store) {
		_, err := st.Meta(ctx(t), "admin_token")
		wantErr(t, err, storage.ErrNotFound, "Meta of a missing key")
		ok(t, st.SetMeta(ctx(t), "admin_token", []byte("h1")), "SetMeta")
		ok(t, st.SetMeta(ctx(t), "admin_token", []byte("h2")), "SetMeta again")
		if v := must[[]byte](t, "Meta")(st.Meta(ctx(t), "admin_token")); string(v) != "h2" {
			t.Fatalf("Meta = %q, want h2", v)
		}
	}},
	{"an empty value reads back empty, not nil; an empty key is ErrInvalid to set and not found", func(t *testing.T, st storage.Store) {
		ok(t, st.SetMeta(ctx(t), "k", []byte{}), "SetMeta of an empty value")
		if v, err := st.Meta(ctx(t), "k"); err != nil || v == nil || len(v) != 0 {
			t.Fatalf("Meta of an empty value = %q (nil %v), %v; want empty, not nil", v, v == nil, err)
		}
		wantErr(t, st.SetMeta(ctx(t), "", []byte("x")), storage.ErrInvalid, "SetMeta of an empty key")
		_, err := st.Meta(ctx(t), "")
		wantErr(t, err, storage.ErrNotFound, "Meta of an empty key")
	}},
}
