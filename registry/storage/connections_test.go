package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// A Connection never shows its secret: not printed with any verb, not marshalled, not logged.
func TestConnectionNeverPrintsSecret(t *testing.T) {
	const secret = "ghp_CANARY_9f3c1e0b7a_SECRET"
	c := Connection{ID: "gh-main", Connectors: []string{"github"}, AuthType: "api_key", Status: "ready",
		Secret: []byte(`{"api_key":"` + secret + `"}`)}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("conn", "c", c)
	for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", &c),
		string(must[[]byte](t)(json.Marshal(c))), logged.String()} {
		if strings.Contains(out, secret) {
			t.Errorf("output holds the secret: %s", out)
		}
		if !strings.Contains(out, "gh-main") {
			t.Errorf("output does not name the connection, so it checks nothing: %s", out)
		}
	}
}
