package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/plugboard/plugboard/server/openapi"
)

// TestOpenAPICoversEveryRoute walks the server's routers and holds them to the OpenAPI
// document both ways: every route the server registers is in the document with its method,
// and every operation of the document is a route the server serves. A route registered for
// any method (the MCP endpoints, hooks) needs at least one operation on its path.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	ts := startServer(t, nil)
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openapi.JSON(), &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{} // "METHOD /path"
	for path, item := range doc.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	served := map[string]bool{}
	var anyMethod []string
	for _, r := range ts.srv.routers {
		err := r.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
			tpl, err := route.GetPathTemplate()
			if err != nil || tpl == "/v1/" { // the prefix that hands /v1 to its own router
				return nil
			}
			methods, err := route.GetMethods()
			if err != nil {
				anyMethod = append(anyMethod, tpl)
				return nil
			}
			for _, m := range methods {
				served[m+" "+tpl] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var missing, extra []string
	for op := range served {
		if !documented[op] {
			missing = append(missing, op)
		}
	}
	for _, p := range anyMethod {
		if doc.Paths[p] == nil {
			missing = append(missing, "ANY "+p)
		}
	}
	for op := range documented {
		_, path, _ := strings.Cut(op, " ")
		if !served[op] && !slices.Contains(anyMethod, path) {
			extra = append(extra, op)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, op := range missing {
		t.Errorf("the server serves %s, which server/openapi/openapi.yaml does not document", op)
	}
	for _, op := range extra {
		t.Errorf("server/openapi/openapi.yaml documents %s, which the server does not serve", op)
	}
	if len(served) < 40 {
		t.Errorf("walked only %d routes; the walk is broken", len(served))
	}
}

// TestOpenAPIServed fetches the document without a token, in JSON and YAML, and a
// connector's document with one.
func TestOpenAPIServed(t *testing.T) {
	ts := startServer(t, nil)
	r := ts.must(http.StatusOK, ts.do("GET", "/v1/openapi.json", nil, "Authorization", ""))
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if string(r.Body) != string(openapi.JSON()) {
		t.Error("GET /v1/openapi.json is not the embedded document")
	}
	r = ts.must(http.StatusOK, ts.do("GET", "/v1/openapi.yaml", nil, "Authorization", ""))
	if !strings.HasPrefix(string(r.Body), "openapi: 3.1.0") {
		t.Errorf("openapi.yaml starts %.40q", r.Body)
	}
	ts.must(http.StatusCreated, ts.upload("http"))
	c := ts.must(http.StatusOK, ts.do("GET", "/v1/connectors/http/openapi.json", nil)).json(t)
	paths, _ := c["paths"].(map[string]any)
	if paths["/v1/connectors/http/actions/request"] == nil {
		t.Errorf("the http connector's document has no request operation: %v", paths)
	}
	if ts.do("GET", "/v1/connectors/http/openapi.json", nil, "Authorization", "").Status != http.StatusUnauthorized {
		t.Error("a connector's document was served without a token")
	}
	if code := ts.do("GET", "/v1/connectors/nope/openapi.json", nil).code(t); code != "connector_not_found" {
		t.Errorf("unknown connector: code %q", code)
	}
}
