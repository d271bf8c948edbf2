package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// consentFake is an API with one OAuth2 connection whose consent completes (or fails) after a
// few polls, and the master-key endpoints.
type consentFake struct {
	*httptest.Server
	mu       sync.Mutex
	polls    int
	readyAt  int    // the poll at which the consent completes
	failWith string // instead, the consent fails with this last_error
	rotated  bool
}

func newConsentFake(t *testing.T, readyAt int, failWith string) *consentFake {
	f := &consentFake{readyAt: readyAt, failWith: failWith}
	doc := func(status, consentURL, lastError string) map[string]any {
		d := map[string]any{"id": "gh", "connectors": []string{"github"}, "status": status,
			"auth": map[string]any{"type": "oauth2", "grant": "authorization_code", "client_id": "Iv1", "last_error": lastError}}
		if consentURL != "" {
			d["consent_url"] = consentURL
		}
		return d
	}
	const url = "https://auth.example/authorize?state=abc"
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, doc("pending_consent", url, ""))
	})
	mux.HandleFunc("POST /v1/connections/gh/reauthorize", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, doc("needs_reauth", url, "refresh refused"))
	})
	mux.HandleFunc("GET /v1/connections/gh", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.polls++
		n := f.polls
		f.mu.Unlock()
		switch {
		case n < f.readyAt:
			reply(w, 200, doc("pending_consent", url, ""))
		case f.failWith != "":
			reply(w, 200, doc("pending_consent", "", f.failWith))
		default:
			reply(w, 200, doc("ready", "", ""))
		}
	})
	mux.HandleFunc("POST /v1/master-key/rotate", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.rotated = true
		f.mu.Unlock()
		reply(w, 200, map[string]any{"key_id": "k3", "rotated": 12})
	})
	mux.HandleFunc("GET /v1/master-key", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{"key_id": "k3"})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *consentFake) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.polls
}

func (f *consentFake) env() env {
	return env{"PLUGBOARD_URL": f.URL, "PLUGBOARD_TOKEN": plugboardtest.Token}
}

func TestConnectionCreateWaitsForConsent(t *testing.T) {
	create := []string{"connection", "create", "gh", "--connector", "github", "--auth", "oauth2", "--client-id", "Iv1",
		"--client-secret-stdin", "--wait", "--wait-timeout", "5s"}
	f := newConsentFake(t, 3, "")
	r := plugboard(t, f.env(), "cs", create...)
	r.want(t, exitOK, []string{"Created connection gh (pending_consent).", "Open this URL in a browser to grant access:\n  https://auth.example/authorize?state=abc",
		"Connection gh is ready."}, []string{"Waiting for the consent in the browser"})
	if n := f.pollCount(); n != 3 {
		t.Errorf("polled %d times", n)
	}

	f = newConsentFake(t, 2, "the token endpoint answered 400 invalid_grant")
	r = plugboard(t, f.env(), "cs", create...)
	r.want(t, exitError, nil, []string{"the consent for gh did not complete: the token endpoint answered 400 invalid_grant", "plugboard connection reauthorize gh"})

	f = newConsentFake(t, 1000, "")
	r = plugboard(t, f.env(), "cs", append(create[:len(create)-1], "300ms")...)
	r.want(t, exitError, nil, []string{"gave up waiting for the consent of gh after 300ms"})

	// Not a terminal and no --wait: print and return.
	f = newConsentFake(t, 1, "")
	r = plugboard(t, f.env(), "cs", "connection", "create", "gh", "--connector", "github", "--client-id", "Iv1", "--client-secret-stdin")
	r.want(t, exitOK, []string{"https://auth.example/authorize?state=abc"}, []string{"Not waiting for the consent"})
	if n := f.pollCount(); n != 0 || strings.Contains(r.stdout, "is ready") {
		t.Errorf("waited without --wait: %d polls", n)
	}
	plugboard(t, f.env(), "cs", append(create, "--no-wait")...).want(t, exitUsage, nil, []string{"use --wait or --no-wait, not both"})
}

func TestConnectionReauthorize(t *testing.T) {
	f := newConsentFake(t, 2, "")
	r := plugboard(t, f.env(), "", "connection", "reauthorize", "gh", "--wait", "--wait-timeout", "5s")
	r.want(t, exitOK, []string{"https://auth.example/authorize?state=abc", "Connection gh is ready."}, nil)
}

func TestKeysRotate(t *testing.T) {
	f := newConsentFake(t, 1, "")
	plugboard(t, f.env(), "", "keys", "rotate").want(t, exitOK, []string{"Rotated the master key: 12 secrets re-sealed under key k3"}, nil)
	f.mu.Lock()
	rotated := f.rotated
	f.mu.Unlock()
	if !rotated {
		t.Error("the server was not asked to rotate")
	}
	plugboard(t, f.env(), "", "keys", "show").want(t, exitOK, []string{"Active master key: k3"}, nil)
	r := plugboard(t, f.env(), "", "keys", "rotate", "-o", "json")
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["key_id"] != "k3" || doc["rotated"] != 12.0 {
		t.Errorf("-o json: %s", r.stdout)
	}
}
