package plugboard

import (
	"context"
	"time"
)

// SetSleep replaces how c waits between retries, so a test sees the waits without taking them.
func SetSleep(c *Client, sleep func(context.Context, time.Duration) error) { c.sleep = sleep }
