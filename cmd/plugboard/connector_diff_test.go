package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// TestPushPrintsChanges: push shows what a version changes against the active one before it
// activates it, and --approve-capabilities passes the approval on.
func TestPushPrintsChanges(t *testing.T) {
	s := plugboardtest.New(t)
	e := serverEnv(s)
	r := plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.0.0", "https://api.github.com"))).ok(t)
	if strings.Contains(r.stdout, "Changes") {
		t.Errorf("a first version has nothing to compare with:\n%s", r.stdout)
	}

	m := testManifest("github", "1.1.0", "https://api.github.com", "https://uploads.github.com")
	m.Actions[0].InputSchema = json.RawMessage(`{"type":"object","required":["title","owner","repo"]}`)
	m.Actions = m.Actions[:1]
	v2 := writeWasm(t, m)
	want := "Changes against the active version 1.0.0:\n" +
		"  ~ action create_issue: input schema\n" +
		"  - action get_repo\n" +
		"  + host https://uploads.github.com (needs approval)\n"
	plugboard(t, e, "", "connector", "push", v2, "--activate").want(t, exitError, []string{want}, []string{
		"error: capabilities_changed:", "hint: review the difference above",
	})
	r = plugboard(t, e, "", "connector", "push", v2, "--activate", "--approve-capabilities").ok(t)
	if !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "Active:  yes (activated now)") {
		t.Errorf("stdout =\n%s", r.stdout)
	}
	if q := s.LastRequest().Query; q != "approve=capabilities" {
		t.Errorf("activation query = %q", q)
	}

	// -o json keeps stdout a JSON document; the changes go to stderr.
	v3 := writeWasm(t, testManifest("github", "1.2.0", "https://api.github.com", "https://uploads.github.com"))
	r = plugboard(t, e, "", "connector", "push", v3, "-o", "json").ok(t)
	var doc map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || doc["version"] != "1.2.0" {
		t.Errorf("stdout is not the version document: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "Changes against the active version 1.1.0:\n  ~ action create_issue: input schema\n  + action get_repo\n") {
		t.Errorf("stderr =\n%s", r.stderr)
	}
	// The active version itself shows no changes.
	if r := plugboard(t, e, "", "connector", "push", v2).ok(t); strings.Contains(r.stdout, "Changes") {
		t.Errorf("pushing the active version again:\n%s", r.stdout)
	}
}
