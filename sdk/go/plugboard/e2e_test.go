package plugboard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard"
	"github.com/plugboard/plugboard/sdk/internal/sdkenv"
)

// TestEndToEnd runs the SDK against the real server (sdkenv: plugboard serve, the http and
// trig connectors, the records service behind the operator's connection crm, the app's
// invoker key), every exchange checked against the OpenAPI document by sdkenv's proxy.
func TestEndToEnd(t *testing.T) {
	env := sdkenv.Start(t)
	acks := &ackRecorder{}
	app := plugboard.New(env.URL, env.AppToken, plugboard.WithUserAgent("sdk-e2e"),
		plugboard.WithHTTPClient(&http.Client{Transport: acks}))
	admin := plugboard.New(env.URL, env.AdminToken)
	var sentID string // the correlation id of the record sent

	t.Run("invoke sends a record and reads it back", func(t *testing.T) {
		ctx := plugboard.WithCorrelationID(t.Context(), "c_e2e_send")
		sent, err := app.Invoke(ctx, "http", "request", plugboard.InvokeRequest{Connection: sdkenv.Connection,
			Input: json.RawMessage(`{"method": "POST", "path": "/records", "body": {"name": "Ada"}}`)})
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Status int            `json:"status"`
			Body   map[string]any `json:"body"`
		}
		json.Unmarshal(sent.Output, &out)
		if out.Status != 201 || out.Body["name"] != "Ada" || sent.Connector != "http" || sent.Version == "" {
			t.Errorf("send answered %+v", sent)
		}
		if sent.CorrelationID != "c_e2e_send" {
			t.Errorf("CorrelationID = %q, want the one sent", sent.CorrelationID)
		}
		sentID = sent.CorrelationID
		read, err := app.Invoke(t.Context(), "http", "request", plugboard.InvokeRequest{Connection: sdkenv.Connection,
			Input: json.RawMessage(`{"method": "GET", "path": "/records"}`)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(read.Output, []byte(`"Ada"`)) || !strings.HasPrefix(read.CorrelationID, "c_") {
			t.Errorf("read answered %s (correlation %q)", read.Output, read.CorrelationID)
		}
	})

	t.Run("errors are typed problems", func(t *testing.T) {
		// The admin may use any connection: one that does not exist is not found. The app's
		// key is scoped to crm: any other is forbidden, existing or not.
		nope := plugboard.InvokeRequest{Connection: "nope", Input: json.RawMessage(`{"method": "GET", "path": "/records"}`)}
		_, err := admin.Invoke(t.Context(), "http", "request", nope)
		wantProblem(t, err, 404, plugboard.CodeConnectionNotFound)
		_, err = app.Invoke(t.Context(), "http", "request", nope)
		wantProblem(t, err, 403, plugboard.CodeForbidden)

		_, err = app.Invoke(t.Context(), "http", "request", plugboard.InvokeRequest{Connection: sdkenv.Connection,
			Input: json.RawMessage(`{"method": "FETCH", "path": "/records"}`)})
		if p := wantProblem(t, err, 400, plugboard.CodeInvalidInput); p != nil && (len(p.Errors) == 0 || !strings.Contains(p.Errors[0].Path, "method")) {
			t.Errorf("invalid_input errors = %+v, want one at /method", p.Errors)
		}

		_, err = app.CreateConnection(t.Context(), plugboard.ConnectionRequest{ID: "mine", Connectors: []string{"http"},
			Params: map[string]any{"base_url": env.Records.URL}, Auth: plugboard.Auth{Type: plugboard.AuthAPIKey, APIKey: "stolen"}})
		wantProblem(t, err, 403, plugboard.CodeForbidden)
		if errors.Is(err, &plugboard.Problem{Code: plugboard.CodeForbidden}) != true {
			t.Error("errors.Is does not match the code")
		}
	})

	t.Run("a queue subscription is consumed with Events, each event acknowledged once", func(t *testing.T) {
		sub, err := app.CreateSubscription(t.Context(), plugboard.SubscriptionRequest{Connector: "trig", Trigger: "items",
			Connection: sdkenv.Connection, Delivery: plugboard.Delivery{Type: plugboard.DeliveryQueue}})
		if err != nil {
			t.Fatal(err)
		}
		defer app.DeleteSubscription(t.Context(), sub.ID)
		var want []string
		for _, name := range []string{"Grace", "Edsger", "Barbara"} {
			want = append(want, env.Records.Add(map[string]any{"name": name})["id"].(string))
		}
		ctx, stop := context.WithTimeout(t.Context(), 30*time.Second)
		defer stop()
		var ids, records []string
		for ev, err := range app.Events(ctx, sub.ID, plugboard.EventsOptions{Wait: 5 * time.Second}) {
			if err != nil {
				t.Fatal(err)
			}
			var rec struct{ ID string }
			json.Unmarshal(ev.Data, &rec)
			ids, records = append(ids, ev.ID), append(records, rec.ID)
			if ev.Type != "trig.items" || ev.EventType != "record.created" || ev.Subscription != sub.ID {
				t.Errorf("event %s", ev.Raw)
			}
			if len(ids) == 3 {
				stop()
			}
		}
		if !slices.Equal(records, want) {
			t.Fatalf("events for records %v, want %v", records, want)
		}
		acked, n := acks.forSub(sub.ID)
		slices.Sort(acked)
		slices.Sort(ids)
		if !slices.Equal(acked, ids) || n != 3 {
			t.Errorf("acknowledged %v (%d newly, by the server's count), want each of %v once", acked, n, ids)
		}
		if again, err := app.PullEvents(t.Context(), sub.ID, 10, 0); err != nil || len(again) != 0 {
			t.Errorf("a second pull got %d events, %v", len(again), err)
		}
		if s, err := app.GetSubscription(t.Context(), sub.ID); err != nil || s.Counts.Pending != 0 {
			t.Errorf("after the acks the subscription has %+v pending, %v", s.Counts, err)
		}
	})

	t.Run("a push is verified with VerifyWebhook, a tampered one refused", func(t *testing.T) {
		type push struct {
			h    http.Header
			body []byte
		}
		pushes := make(chan push, 8)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			pushes <- push{r.Header.Clone(), b}
			w.WriteHeader(http.StatusNoContent)
		}))
		defer recv.Close()
		sub, err := app.CreateSubscription(t.Context(), plugboard.SubscriptionRequest{Connector: "trig", Trigger: "items",
			Connection: sdkenv.Connection, Delivery: plugboard.Delivery{Type: plugboard.DeliveryWebhook, URL: recv.URL + "/hook"}})
		if err != nil {
			t.Fatal(err)
		}
		defer app.DeleteSubscription(t.Context(), sub.ID)
		if !strings.HasPrefix(sub.SigningSecret, "whsec_") {
			t.Fatalf("signing_secret %q", sub.SigningSecret)
		}
		rec := env.Records.Add(map[string]any{"name": "Alan"})
		var p push
		select {
		case p = <-pushes:
		case <-time.After(30 * time.Second):
			t.Fatal("no push within 30 s")
		}
		ev, err := plugboard.VerifyWebhook(p.h, p.body, sub.SigningSecret)
		if err != nil {
			t.Fatalf("%v\nheaders %v\nbody %s", err, p.h, p.body)
		}
		var data struct{ ID, Name string }
		json.Unmarshal(ev.Data, &data)
		if ev.Subscription != sub.ID || ev.Type != "trig.items" || data.ID != rec["id"] || data.Name != "Alan" || ev.ID != p.h.Get("webhook-id") {
			t.Errorf("pushed event %s", ev.Raw)
		}
		tampered := bytes.Replace(p.body, []byte("Alan"), []byte("Mallory"), 1)
		if _, err := plugboard.VerifyWebhook(p.h, tampered, sub.SigningSecret); !errors.Is(err, plugboard.ErrWebhookNoMatchingSignature) {
			t.Errorf("a tampered body: %v, want no matching signature", err)
		}
	})

	t.Run("MCP servers, keys, invocations and audit as the admin", func(t *testing.T) {
		ctx := t.Context()
		m, err := admin.CreateMCPServer(ctx, plugboard.MCPServerRequest{Name: "crm-tools", Connector: "http", Connection: sdkenv.Connection, Tools: []string{"request"}})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(m.Token, "mcp_") || m.URL != "/mcp/crm-tools" || !m.Enabled || !slices.Equal(m.Tools, []string{"request"}) {
			t.Errorf("created %s", m.Raw)
		}
		off := false
		if m, err = admin.UpdateMCPServer(ctx, "crm-tools", plugboard.MCPServerPatch{Enabled: &off}); err != nil || m.Enabled {
			t.Errorf("disable: %s, %v", m.Raw, err)
		}
		if m, err = admin.UpdateMCPServer(ctx, "crm-tools", plugboard.MCPServerPatch{AllTools: true}); err != nil || !m.AllTools {
			t.Errorf("all tools: %s, %v", m.Raw, err)
		}
		if got, err := admin.GetMCPServer(ctx, "crm-tools"); err != nil || got.Token != "" || got.Enabled || got.Connector != "http" {
			t.Errorf("get: %s, %v", got.Raw, err)
		}
		if all, err := admin.ListMCPServers(ctx); err != nil || len(all) != 1 {
			t.Errorf("list: %v, %v", all, err)
		}
		if tok, err := admin.RotateMCPToken(ctx, "crm-tools"); err != nil || !strings.HasPrefix(tok, "mcp_") || tok == m.Token {
			t.Errorf("rotate: %v", err)
		}
		if err := admin.DeleteMCPServer(ctx, "crm-tools"); err != nil {
			t.Error(err)
		}
		_, err = admin.GetMCPServer(ctx, "crm-tools")
		wantProblem(t, err, 404, "")

		k, err := admin.CreateKey(ctx, plugboard.KeySpec{Name: "e2e-reader", Role: plugboard.RoleReader})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(k.Secret, "pbk_") || k.Role != plugboard.RoleReader {
			t.Errorf("created key %s", k.Raw)
		}
		if got, err := admin.GetKey(ctx, k.ID); err != nil || got.Secret != "" || got.Name != "e2e-reader" {
			t.Errorf("get key: %s, %v", got.Raw, err)
		}
		keys, err := admin.ListKeys(ctx)
		if err != nil || !slices.ContainsFunc(keys, func(x plugboard.Key) bool { return x.ID == k.ID }) {
			t.Errorf("list keys: %v", err)
		}
		reader := plugboard.New(env.URL, k.Secret)
		if _, err := reader.ListConnectors(ctx); err != nil {
			t.Errorf("the reader key: %v", err)
		}
		_, err = reader.CreateKey(ctx, plugboard.KeySpec{Name: "escalate", Role: plugboard.RoleAdmin})
		wantProblem(t, err, 403, plugboard.CodeForbidden)
		if err := admin.RevokeKey(ctx, k.ID); err != nil {
			t.Fatal(err)
		}
		_, err = reader.ListConnectors(ctx)
		wantProblem(t, err, 401, plugboard.CodeUnauthenticated)

		if sentID != "" {
			inv, err := admin.GetInvocation(ctx, sentID)
			if err != nil || inv.Connector != "http" || inv.Action != "request" || inv.Connection != sdkenv.Connection {
				t.Errorf("invocation %s: %s, %v", sentID, inv.Raw, err)
			}
		}
		var entries int
		for e, err := range admin.AuditEntries(ctx, plugboard.AuditQuery{Limit: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Action == "" || e.Time.IsZero() {
				t.Errorf("audit entry %s", e.Raw)
			}
			if entries++; entries == 5 {
				break // three pages of two
			}
		}
		if entries != 5 {
			t.Errorf("%d audit entries, want at least 5", entries)
		}
	})

	t.Run("examples", func(t *testing.T) { testExamples(t, env) })
}

// testExamples builds the programs in sdk/go/examples and runs each against env, checking its
// output.
func testExamples(t *testing.T, env *sdkenv.Env) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./sdk/go/examples/...")
	build.Dir = env.Root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("read_and_send", func(t *testing.T) {
		out := env.Run(t, bin, filepath.Join(bin, "read_and_send"))
		t.Logf("read_and_send:\n%s", out)
		if !regexp.MustCompile(`(?m)^read \d+ records\n` + `sent \{"name": "Ada Lovelace"\}: 201 rec_\d+ \(correlation c_\w+\)$`).MatchString(out) {
			t.Errorf("output:\n%s", out)
		}
	})
	for _, name := range []string{"receive_pull", "receive_push"} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command(filepath.Join(bin, name))
			cmd.Env = append(env.Vars(), "EVENTS=2", "TIMEOUT_S=40", "LISTEN=127.0.0.1:0")
			out := env.RunUntil(t, cmd, "subscribed sub_", func() {
				env.Records.Add(map[string]any{"name": name + " 1"})
				env.Records.Add(map[string]any{"name": name + " 2"})
			})
			t.Logf("%s:\n%s", name, out)
			events := regexp.MustCompile(`(?m)^event evt_\S+ record.created \{.*"name":"`+name+` (\d)".*\}$`).FindAllStringSubmatch(out, -1)
			if len(events) != 2 || events[0][1] != "1" || events[1][1] != "2" {
				t.Errorf("output:\n%s", out)
			}
			if name == "receive_pull" && !strings.Contains(out, "received 2 events") {
				t.Errorf("output:\n%s", out)
			}
		})
	}
}

func wantProblem(t *testing.T, err error, status int, code string) *plugboard.Problem {
	t.Helper()
	p, ok := errors.AsType[*plugboard.Problem](err)
	if !ok {
		t.Errorf("error %v (%T), want a %d %s problem", err, err, status, code)
		return nil
	}
	if p.Status != status || (code != "" && p.Code != code) || p.CorrelationID == "" || p.Source != plugboard.SourcePlugboard {
		t.Errorf("problem %+v, want %d %s with a correlation id, from plugboard", p, status, code)
	}
	if want := fmt.Sprintf("(HTTP %d)", status); !strings.Contains(p.Error(), want) {
		t.Errorf("Error() = %q", p.Error())
	}
	return p
}

// ackRecorder is a transport that records the ack requests and the server's answers.
type ackRecorder struct {
	mu   sync.Mutex
	ids  map[string][]string // by subscription
	newN map[string]int
}

func (a *ackRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	sub, isAck := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/v1/subscriptions/"), "/events/ack")
	var req struct{ IDs []string }
	if isAck && r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil || !isAck {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(bytes.NewReader(b))
	var answer struct{ Acked int }
	json.Unmarshal(b, &answer)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids, a.newN = map[string][]string{}, map[string]int{}
	}
	a.ids[sub] = append(a.ids[sub], req.IDs...)
	a.newN[sub] += answer.Acked
	return resp, nil
}

func (a *ackRecorder) forSub(sub string) ([]string, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ids[sub]), a.newN[sub]
}
