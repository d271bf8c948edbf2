package storagetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plugboard/plugboard/registry/storage"
)

var timerIDPattern = regexp.MustCompile(`^t_[0-9a-f]{24}$`)

// timerCases are the promises of [storage.Timers]: ids, due order, rescheduling, scoped
// cancels, single deletes and the per-scope limit (storage.MaxTimersPerScope).
var timerCases = []testCase{
	{"SetTimer assigns an id and DueTimers returns it when due", func(t *testing.T, st storage.Store) {
		at := time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
		id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", Name: "renew", FireAt: at, Payload: json.RawMessage(`{ "a": 1 }`)}))
		if !timerIDPattern.MatchString(id) {
			t.Fatalf("timer id %q, want t_ and 24 hex digits", id)
		}
		due := must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 10))
		if len(due) != 1 {
			t.Fatalf("DueTimers = %+v, want the one timer", due)
		}
		got := due[0]
		if got.ID != id || got.Connector != "github" || got.Connection != "c1" || got.Name != "renew" || !got.FireAt.Equal(at) || !jsonEqual(got.Payload, []byte(`{"a":1}`)) {
			t.Fatalf("due timer = %+v", got)
		}
		if none := must[[]storage.Timer](t, "DueTimers before")(st.DueTimers(ctx(t), at.Add(-time.Millisecond), 10)); len(none) != 0 {
			t.Fatalf("DueTimers before the fire time = %+v", none)
		}
	}},
	{"DueTimers is earliest first, bounded by max, and leaves future timers", func(t *testing.T, st storage.Store) {
		base := time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)
		for i, off := range []int{5, 1, 3, 2, 4} {
			id := fmt.Sprintf("t_%024d", i)
			must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{ID: id, Connector: "github", FireAt: base.Add(time.Duration(off) * time.Minute)}))
		}
		must[string](t, "SetTimer future")(st.SetTimer(ctx(t), storage.Timer{ID: "t_future", Connector: "github", FireAt: time.Now().Add(time.Hour)}))
		// Two timers at the same time are ordered by id.
		must[string](t, "SetTimer tie b")(st.SetTimer(ctx(t), storage.Timer{ID: "t_tie_b", Connector: "slack", FireAt: base}))
		must[string](t, "SetTimer tie a")(st.SetTimer(ctx(t), storage.Timer{ID: "t_tie_a", Connector: "slack", FireAt: base}))
		want := []string{"t_tie_a", "t_tie_b", fmt.Sprintf("t_%024d", 1), fmt.Sprintf("t_%024d", 3), fmt.Sprintf("t_%024d", 2), fmt.Sprintf("t_%024d", 4), fmt.Sprintf("t_%024d", 0)}
		if got := timerIDs(must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 0))); !slices.Equal(got, want) {
			t.Fatalf("DueTimers = %v, want %v", got, want)
		}
		if got := timerIDs(must[[]storage.Timer](t, "DueTimers max 3")(st.DueTimers(ctx(t), time.Now(), 3))); !slices.Equal(got, want[:3]) {
			t.Fatalf("DueTimers max 3 = %v, want %v", got, want[:3])
		}
	}},
	{"setting a pending id again reschedules it; another scope's id is ErrExists", func(t *testing.T, st storage.Store) {
		past := time.Now().Add(-time.Minute)
		id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{ID: "t_fixed", Connector: "github", Connection: "c1", FireAt: past}))
		if id != "t_fixed" {
			t.Fatalf("SetTimer with an id returned %q", id)
		}
		later := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
		must[string](t, "SetTimer reschedule")(st.SetTimer(ctx(t), storage.Timer{ID: "t_fixed", Connector: "github", Connection: "c1", FireAt: later}))
		if due := must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 0)); len(due) != 0 {
			t.Fatalf("a rescheduled timer is still due at its old time: %+v", due)
		}
		due := must[[]storage.Timer](t, "DueTimers later")(st.DueTimers(ctx(t), later, 0))
		if len(due) != 1 || !due[0].FireAt.Equal(later) {
			t.Fatalf("DueTimers at the new time = %+v", due)
		}
		_, err := st.SetTimer(ctx(t), storage.Timer{ID: "t_fixed", Connector: "slack", Connection: "c1", FireAt: past})
		wantErr(t, err, storage.ErrExists, "SetTimer with an id pending in another scope")
	}},
	{"CancelTimer only in the timer's scope", func(t *testing.T, st storage.Store) {
		id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: time.Now()}))
		wantErr(t, st.CancelTimer(ctx(t), "slack", "c1", id), storage.ErrNotFound, "CancelTimer from another connector")
		wantErr(t, st.CancelTimer(ctx(t), "github", "c2", id), storage.ErrNotFound, "CancelTimer from another connection")
		ok(t, st.CancelTimer(ctx(t), "github", "c1", id), "CancelTimer")
		wantErr(t, st.CancelTimer(ctx(t), "github", "c1", id), storage.ErrNotFound, "a second CancelTimer")
		if due := must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now().Add(time.Hour), 0)); len(due) != 0 {
			t.Fatalf("a cancelled timer is due: %+v", due)
		}
	}},
	{"DeleteTimer succeeds once", func(t *testing.T, st storage.Store) {
		id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", FireAt: time.Now()}))
		ok(t, st.DeleteTimer(ctx(t), id), "DeleteTimer")
		wantErr(t, st.DeleteTimer(ctx(t), id), storage.ErrNotFound, "a second DeleteTimer")
		wantErr(t, st.DeleteTimer(ctx(t), "t_unknown"), storage.ErrNotFound, "DeleteTimer of an unknown id")
	}},
	{"concurrent deleters of one timer: exactly one succeeds", func(t *testing.T, st storage.Store) {
		id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", FireAt: time.Now()}))
		var won, lost atomic.Int32
		var other atomic.Value
		parallel(8, func(int) {
			switch err := st.DeleteTimer(ctx(t), id); {
			case err == nil:
				won.Add(1)
			case errors.Is(err, storage.ErrNotFound):
				lost.Add(1)
			default:
				other.Store(err)
			}
		})
		if err, _ := other.Load().(error); err != nil {
			t.Fatalf("DeleteTimer: %v", err)
		}
		if won.Load() != 1 || lost.Load() != 7 {
			t.Fatalf("%d deleters succeeded and %d got ErrNotFound, want 1 and 7", won.Load(), lost.Load())
		}
	}},
	{"a scope holds at most MaxTimersPerScope timers", func(t *testing.T, st storage.Store) {
		at := time.Now().Add(time.Hour)
		var first string
		for i := range storage.MaxTimersPerScope {
			id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at.Add(time.Duration(i) * time.Second)}))
			if i == 0 {
				first = id
			}
		}
		_, err := st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at})
		wantErr(t, err, storage.ErrTooMany, "SetTimer past the per-scope limit")
		must[string](t, "rescheduling a pending timer at the limit")(st.SetTimer(ctx(t), storage.Timer{ID: first, Connector: "github", Connection: "c1", FireAt: at.Add(time.Minute)}))
		must[string](t, "SetTimer in another scope")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c2", FireAt: at}))
		must[string](t, "SetTimer for another connector")(st.SetTimer(ctx(t), storage.Timer{Connector: "slack", Connection: "c1", FireAt: at}))
		must[string](t, "SetTimer without a connection")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", FireAt: at}))
		ok(t, st.DeleteTimer(ctx(t), first), "DeleteTimer")
		second := must[string](t, "SetTimer once one is deleted")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at}))
		_, err = st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at})
		wantErr(t, err, storage.ErrTooMany, "SetTimer past the limit again")
		ok(t, st.CancelTimer(ctx(t), "github", "c1", second), "CancelTimer")
		must[string](t, "SetTimer once one is cancelled")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at}))
	}},
	{"a timer without connector or fire time is ErrInvalid", func(t *testing.T, st storage.Store) {
		_, err := st.SetTimer(ctx(t), storage.Timer{FireAt: time.Now()})
		wantErr(t, err, storage.ErrInvalid, "SetTimer without a connector")
		_, err = st.SetTimer(ctx(t), storage.Timer{Connector: "github"})
		wantErr(t, err, storage.ErrInvalid, "SetTimer without a fire time")
	}},
	{"a fire time keeps its instant to the nanosecond, in any zone, and is due from that instant", func(t *testing.T, st storage.Store) {
		at := time.Now().Add(-time.Hour).Truncate(time.Second).Add(123456789).In(time.FixedZone("UTC+1", 3600))
		id := must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: at, Payload: json.RawMessage(`{ "n" : 1 }`)}))
		due := must[[]storage.Timer](t, "DueTimers at the fire time")(st.DueTimers(ctx(t), at, 0))
		if len(due) != 1 || due[0].ID != id || !due[0].FireAt.Equal(at) {
			t.Fatalf("DueTimers at the fire time %v = %+v, want the timer with that fire time", at, due)
		}
		if string(due[0].Payload) != `{"n":1}` {
			t.Fatalf("Payload = %s, want it compacted: {\"n\":1}", due[0].Payload)
		}
		if early := must[[]storage.Timer](t, "DueTimers a nanosecond before")(st.DueTimers(ctx(t), at.Add(-time.Nanosecond), 0)); len(early) != 0 {
			t.Fatalf("DueTimers a nanosecond before the fire time = %+v", early)
		}
	}},
	{"DueTimers puts fire times before 1970 first", func(t *testing.T, st storage.Store) {
		late := time.Now().Add(-time.Hour)
		early := time.Date(1910, 1, 1, 0, 0, 0, 0, time.UTC) // a negative UnixNano
		must[string](t, "SetTimer late")(st.SetTimer(ctx(t), storage.Timer{ID: "t_late", Connector: "github", FireAt: late}))
		must[string](t, "SetTimer early")(st.SetTimer(ctx(t), storage.Timer{ID: "t_early", Connector: "github", FireAt: early}))
		if got := timerIDs(must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now(), 0))); !slices.Equal(got, []string{"t_early", "t_late"}) {
			t.Fatalf("DueTimers = %v, want [t_early t_late]", got)
		}
		due := must[[]storage.Timer](t, "DueTimers in 1911")(st.DueTimers(ctx(t), early.AddDate(1, 0, 0), 0))
		if len(due) != 1 || due[0].ID != "t_early" || !due[0].FireAt.Equal(early) {
			t.Fatalf("DueTimers in 1911 = %+v, want only t_early at %v", due, early)
		}
	}},
	{"CancelTimer of an unknown or empty id is ErrNotFound", func(t *testing.T, st storage.Store) {
		must[string](t, "SetTimer")(st.SetTimer(ctx(t), storage.Timer{Connector: "github", Connection: "c1", FireAt: time.Now()}))
		wantErr(t, st.CancelTimer(ctx(t), "github", "c1", "t_unknown"), storage.ErrNotFound, "CancelTimer of an unknown id")
		wantErr(t, st.CancelTimer(ctx(t), "github", "c1", ""), storage.ErrNotFound, "CancelTimer of an empty id")
	}},
	{"a fire time out of range or a payload that is not JSON is ErrInvalid", func(t *testing.T, st storage.Store) {
		_, err := st.SetTimer(ctx(t), storage.Timer{Connector: "github", FireAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
		wantErr(t, err, storage.ErrInvalid, "SetTimer in the year 3000 (past UnixNano's range)")
		_, err = st.SetTimer(ctx(t), storage.Timer{Connector: "github", FireAt: time.Now(), Payload: json.RawMessage(`{`)})
		wantErr(t, err, storage.ErrInvalid, "SetTimer with a payload that is not JSON")
		if due := must[[]storage.Timer](t, "DueTimers")(st.DueTimers(ctx(t), time.Now().Add(time.Hour), 0)); len(due) != 0 {
			t.Fatalf("a refused SetTimer stored %+v", due)
		}
	}},
}
