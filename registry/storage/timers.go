package storage

import (
	"encoding/json"
	"time"

	"github.com/plugboard/plugboard/abi"
)

// MaxTimersPerScope is how many timers may be pending per (connector, connection).
const MaxTimersPerScope = abi.TimerMaxPerScope

// Timer is a durable timer set by a plugin with the plugboard_timer import.
type Timer struct {
	// ID is "t_" and 24 random hex digits, assigned by [Store.SetTimer] when empty.
	ID string
	// Connector and Connection are the timer's scope; Connection is empty for a connector that
	// runs without one.
	Connector, Connection string
	// Name is the plugin's name for the timer; the store does not interpret it.
	Name string
	// FireAt is when the timer is due.
	FireAt time.Time
	// Payload is the plugin's JSON payload (stored compacted).
	Payload json.RawMessage
}
