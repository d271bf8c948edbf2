package sdk

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/plugboard/plugboard/sdk/internal/sdkenv"
)

// TestEnvScenario checks the environment the SDK tests share, with plain HTTP: the app's key
// sends a record through the crm connection and reads it back, and cannot see the
// connection's secret.
func TestEnvScenario(t *testing.T) {
	env := sdkenv.Start(t)
	call := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, env.URL+path, bytes.NewBufferString(body))
		req.Header.Set("Authorization", "Bearer "+env.AppToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	st, b := call("POST", "/v1/connectors/http/actions/request", `{"connection": "crm", "input": {"method": "POST", "path": "/records", "body": {"name": "Ada"}}}`)
	if st != 200 {
		t.Fatalf("send: %d %s", st, b)
	}
	var out struct {
		Output struct {
			Status int            `json:"status"`
			Body   map[string]any `json:"body"`
		} `json:"output"`
	}
	json.Unmarshal(b, &out)
	if out.Output.Status != 201 || out.Output.Body["id"] != "rec_1" {
		t.Errorf("send answered %s", b)
	}
	if got := env.Records.All(); len(got) != 1 || got[0]["name"] != "Ada" {
		t.Errorf("records = %v", got)
	}
	if st, b := call("POST", "/v1/connections", `{"id": "x", "connectors": ["http"], "params": {"base_url": "http://127.0.0.1:1"}, "auth": {"type": "none"}}`); st != 403 {
		t.Errorf("the invoker key created a connection: %d %s", st, b)
	}
	if bytes.Contains(b, []byte(sdkenv.RecordsKey)) {
		t.Error("an answer holds the connection's secret")
	}
}
