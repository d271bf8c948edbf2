package natsstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func timerIDs(ts []Timer) []string {
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.ID)
	}
	return ids
}

func TestTimersRoundTrip(t *testing.T) {
	s := openTest(t, nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("x", 3600))
	id := must[string](t)(s.SetTimer(bg, Timer{Connector: "github", Connection: "gh-main", Name: "renew", FireAt: at, Payload: json.RawMessage(`{"n":1}`)}))
	if !strings.HasPrefix(id, "t_") || len(id) != 26 {
		t.Errorf("id = %q", id)
	}
	due := must[[]Timer](t)(s.DueTimers(bg, at, 0))
	if len(due) != 1 {
		t.Fatalf("due = %v", due)
	}
	got := due[0]
	if got.ID != id || got.Connector != "github" || got.Connection != "gh-main" || got.Name != "renew" ||
		!got.FireAt.Equal(at) || string(got.Payload) != `{"n":1}` {
		t.Errorf("timer = %+v", got)
	}
	if due := must[[]Timer](t)(s.DueTimers(bg, at.Add(-time.Nanosecond), 0)); len(due) != 0 {
		t.Errorf("due before its time: %v", due)
	}

	t.Run("reschedule keeps the id", func(t *testing.T) {
		later := at.Add(time.Hour)
		if _, err := s.SetTimer(bg, Timer{ID: id, Connector: "github", Connection: "gh-main", Name: "renew", FireAt: later}); err != nil {
			t.Fatal(err)
		}
		if due := must[[]Timer](t)(s.DueTimers(bg, at, 0)); len(due) != 0 {
			t.Errorf("the old fire time is still indexed: %v", due)
		}
		if due := must[[]Timer](t)(s.DueTimers(bg, later, 0)); !slices.Equal(timerIDs(due), []string{id}) {
			t.Errorf("due = %v", due)
		}
		if _, err := s.SetTimer(bg, Timer{ID: id, Connector: "other", FireAt: later}); !errors.Is(err, ErrExists) {
			t.Errorf("taking an id of another scope: %v, want ErrExists", err)
		}
	})

	t.Run("cancel is scoped", func(t *testing.T) {
		tests := []struct {
			name                  string
			connector, connection string
			id                    string
		}{
			{"other connector", "gitlab", "gh-main", id},
			{"other connection", "github", "gh-2", id},
			{"unknown id", "github", "gh-main", "t_nope"},
			{"empty id", "github", "gh-main", ""},
		}
		for _, tt := range tests {
			if err := s.CancelTimer(bg, tt.connector, tt.connection, tt.id); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", tt.name, err)
			}
		}
		if err := s.CancelTimer(bg, "github", "gh-main", id); err != nil {
			t.Fatal(err)
		}
		if due := must[[]Timer](t)(s.DueTimers(bg, at.Add(24*time.Hour), 0)); len(due) != 0 {
			t.Errorf("cancelled timer still due: %v", due)
		}
		if err := s.CancelTimer(bg, "github", "gh-main", id); !errors.Is(err, ErrNotFound) {
			t.Errorf("second cancel: %v", err)
		}
	})

	t.Run("invalid", func(t *testing.T) {
		tests := []struct {
			name string
			t    Timer
		}{
			{"no connector", Timer{FireAt: at}},
			{"no fire time", Timer{Connector: "c"}},
			{"fire time out of range", Timer{Connector: "c", FireAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			{"payload not JSON", Timer{Connector: "c", FireAt: at, Payload: json.RawMessage(`{`)}},
		}
		for _, tt := range tests {
			if _, err := s.SetTimer(bg, tt.t); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", tt.name, err)
			}
		}
	})
}

func TestDueTimersOrder(t *testing.T) {
	s := openTest(t, nil)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	// Set out of order, across scopes, one before 1970 (negative UnixNano) and two at the same time.
	offsets := []time.Duration{5 * time.Second, -time.Hour * 24 * 365 * 60, time.Second, 3 * time.Second, time.Second, 2 * time.Second}
	byTime := map[string]time.Time{}
	for i, off := range offsets {
		tm := Timer{ID: fmt.Sprintf("t_%02d", i), Connector: "c", Connection: fmt.Sprintf("conn%d", i%2), FireAt: base.Add(off)}
		if _, err := s.SetTimer(bg, tm); err != nil {
			t.Fatal(err)
		}
		byTime[tm.ID] = tm.FireAt
	}
	all := must[[]Timer](t)(s.DueTimers(bg, base.Add(time.Minute), 0))
	want := []string{"t_01", "t_02", "t_04", "t_05", "t_03", "t_00"}
	if !slices.Equal(timerIDs(all), want) {
		t.Fatalf("order = %v, want %v", timerIDs(all), want)
	}
	for _, tm := range all {
		if !tm.FireAt.Equal(byTime[tm.ID]) {
			t.Errorf("%s fires at %v, want %v", tm.ID, tm.FireAt, byTime[tm.ID])
		}
	}
	if got := timerIDs(must[[]Timer](t)(s.DueTimers(bg, base.Add(time.Minute), 3))); !slices.Equal(got, want[:3]) {
		t.Errorf("max 3 = %v", got)
	}
	if got := timerIDs(must[[]Timer](t)(s.DueTimers(bg, base.Add(2*time.Second), 0))); !slices.Equal(got, want[:4]) {
		t.Errorf("due at +2s = %v", got)
	}
	for _, id := range want[:2] {
		if err := s.DeleteTimer(bg, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteTimer(bg, "t_01"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
	if got := timerIDs(must[[]Timer](t)(s.DueTimers(bg, base.Add(time.Minute), 0))); !slices.Equal(got, want[2:]) {
		t.Errorf("after deletes = %v", got)
	}
}

func TestTimersPerScopeLimit(t *testing.T) {
	s := openTest(t, nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var ids []string
	for i := range MaxTimersPerScope {
		ids = append(ids, must[string](t)(s.SetTimer(bg, Timer{Connector: "c", Connection: "conn", Name: "n", FireAt: at.Add(time.Duration(i))})))
	}
	if _, err := s.SetTimer(bg, Timer{Connector: "c", Connection: "conn", FireAt: at}); !errors.Is(err, ErrTooMany) {
		t.Fatalf("timer %d: err = %v, want ErrTooMany", MaxTimersPerScope+1, err)
	}
	for _, other := range []Timer{{Connector: "c", Connection: "conn2"}, {Connector: "c2", Connection: "conn"}, {Connector: "c"}} {
		other.FireAt = at
		if _, err := s.SetTimer(bg, other); err != nil {
			t.Errorf("scope %s/%s is not full: %v", other.Connector, other.Connection, err)
		}
	}
	if _, err := s.SetTimer(bg, Timer{ID: ids[0], Connector: "c", Connection: "conn", FireAt: at.Add(time.Hour)}); err != nil {
		t.Errorf("rescheduling in a full scope: %v", err)
	}
	if err := s.CancelTimer(bg, "c", "conn", ids[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetTimer(bg, Timer{Connector: "c", Connection: "conn", FireAt: at}); err != nil {
		t.Errorf("after a cancel: %v", err)
	}
}

func TestDeleteConnectionCascades(t *testing.T) {
	s := openTest(t, nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"gone", "gone2", "kept"} { // "gone2" shares the prefix of "gone"
		if err := s.CreateConnection(bg, testConnection(id)); err != nil {
			t.Fatal(err)
		}
		for _, connector := range []string{"github", "slack"} {
			if err := s.KVSet(bg, connector, id, "k", []byte(`"`+id+`"`), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.SetTimer(bg, Timer{ID: "t_" + connector + "_" + id, Connector: connector, Connection: id, FireAt: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteConnection(bg, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, connector := range []string{"github", "slack"} {
		if _, found := kvGet(t, s, connector, "gone", "k"); found {
			t.Errorf("kv of %s/gone survived", connector)
		}
		for _, id := range []string{"gone2", "kept"} {
			if v, found := kvGet(t, s, connector, id, "k"); !found || v != `"`+id+`"` {
				t.Errorf("kv of %s/%s: %q, %v", connector, id, v, found)
			}
		}
	}
	want := []string{"t_github_gone2", "t_github_kept", "t_slack_gone2", "t_slack_kept"}
	if got := timerIDs(must[[]Timer](t)(s.DueTimers(bg, at, 0))); !slices.Equal(got, want) {
		t.Errorf("timers = %v, want %v", got, want)
	}
	// The scope is empty again: a new connection with the same id starts clean.
	if err := s.CreateConnection(bg, testConnection("gone")); err != nil {
		t.Fatal(err)
	}
	if n := scopeSize(t, s, "github", "gone"); n != 0 {
		t.Errorf("recreated connection inherits kv size %d", n)
	}
}

// A connector removed from a connection loses its timers with that connection, in the same
// transaction; the timers of the connectors it keeps, and of other connections, stay.
func TestUnbindingAConnectorDeletesItsTimers(t *testing.T) {
	s := openTest(t, nil)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"c", "other"} {
		c := testConnection(id)
		c.Connectors = []string{"github", "slack"}
		if err := s.CreateConnection(bg, c); err != nil {
			t.Fatal(err)
		}
		for _, connector := range c.Connectors {
			if _, err := s.SetTimer(bg, Timer{ID: "t_" + connector + "_" + id, Connector: connector, Connection: id, FireAt: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.UpdateConnection(bg, "c", func(c *Connection) error { c.Connectors = []string{"slack"}; return nil }); err != nil {
		t.Fatal(err)
	}
	want := []string{"t_github_other", "t_slack_c", "t_slack_other"}
	if got := timerIDs(must[[]Timer](t)(s.DueTimers(bg, at, 0))); !slices.Equal(got, want) {
		t.Errorf("timers = %v, want %v", got, want)
	}
}
