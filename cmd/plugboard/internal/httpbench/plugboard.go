package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/cmd/plugboard/internal/benchserver"
)

const token = "pba_httpbench"

// connector is one connector the benchmark calls: its plugin and the action that makes one
// plugboard_http GET of the upstream per call.
type connector struct {
	name, action, wasm string
}

// connectors are the connectors -connectors may name.
var connectors = map[string]connector{
	// The connector of issue 13's figure: AssemblyScript, Extism's AS PDK.
	"ashttp": {name: "ashttp", action: "get", wasm: "bin/testplugins/ashttp.wasm"},
	// The bundled Go connector, through the Go PDK.
	"http": {name: "http", action: "request", wasm: "bin/plugins/http.wasm"},
}

// actionBody is the body of every action call: a GET of /item on the connection's base_url.
func actionBody(c connector) string {
	return `{"connection":"bench-` + c.name + `","input":{"path":"/item"}}`
}

// plugboard is one plugboard server set up for the benchmark: every connector uploaded, a
// connection "bench-NAME" to the upstream for each, and an MCP session on the first one's
// tools when mcp is set.
type plugboard struct {
	srv *benchserver.Server
	// mcp is the MCP tools/call request of the first connector's action, with the server's
	// token and the session's headers; its body is "" without MCP.
	mcp request
}

// startPlugboard starts bin on dir with loopback egress allowed (the upstream is on
// 127.0.0.1), and Go's profiler on a loopback port of its own when pprof is set, and sets it up; every call it makes on the way is checked for the upstream's
// answer, so a broken setup fails here rather than as a fast column of errors.
func startPlugboard(ctx context.Context, bin, dir string, cs []connector, upstream string, mcp, pprof bool) (*plugboard, error) {
	args := []string{"--egress-allow", "127.0.0.0/8"}
	if pprof {
		args = append(args, "--pprof-listen", "127.0.0.1:0")
	}
	srv, err := benchserver.Start(benchserver.Options{Bin: bin, Data: dir, Token: token, Args: args})
	if err != nil {
		return nil, err
	}
	pb := &plugboard{srv: srv}
	if err := pb.setup(ctx, cs, upstream, mcp); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("%w (server log: %s)", err, srv.Log)
	}
	return pb, nil
}

func (pb *plugboard) setup(ctx context.Context, cs []connector, upstream string, mcp bool) error {
	for _, c := range cs {
		wasm, err := os.ReadFile(c.wasm)
		if err != nil {
			return fmt.Errorf("%v (`make bench-http` builds it)", err)
		}
		if _, err := pb.srv.API(ctx, "POST", "/v1/connectors", "application/wasm", wasm); err != nil {
			return err
		}
		conn, _ := json.Marshal(map[string]any{"id": "bench-" + c.name, "connectors": []string{c.name},
			"params": map[string]string{"base_url": upstream}, "auth": map[string]string{"type": "none"}})
		if _, err := pb.srv.API(ctx, "POST", "/v1/connections", "application/json", conn); err != nil {
			return err
		}
		out, err := pb.srv.API(ctx, "POST", pb.actionPath(c), "application/json", []byte(actionBody(c)))
		if err != nil {
			return err
		}
		var doc struct{ Output json.RawMessage }
		if err := json.Unmarshal(out, &doc); err != nil {
			return fmt.Errorf("%s: %v: %s", pb.actionPath(c), err, out)
		}
		if err := checkOutput(doc.Output); err != nil {
			return fmt.Errorf("%s: %w", pb.actionPath(c), err)
		}
	}
	if mcp && len(cs) > 0 {
		return pb.openMCP(ctx, cs[0])
	}
	return nil
}

// checkOutput fails unless an action's output (or an MCP result's structuredContent) is the
// upstream's 200 with its body: the http connector gives the JSON body parsed, ashttp its text.
func checkOutput(out json.RawMessage) error {
	var o struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(out, &o); err != nil {
		return fmt.Errorf("output %s: %v", out, err)
	}
	var text string
	if json.Unmarshal(o.Body, &text) != nil {
		text = string(o.Body)
	}
	var got, want any
	json.Unmarshal([]byte(text), &got)
	json.Unmarshal([]byte(upstreamBody), &want)
	if o.Status != 200 || fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("output %s is not the upstream's 200 with its body", out)
	}
	return nil
}

func (pb *plugboard) actionPath(c connector) string {
	return "/v1/connectors/" + c.name + "/actions/" + c.action
}

// actionRequest is wrk's request for c's action.
func (pb *plugboard) actionRequest(c connector) request {
	return request{body: actionBody(c), headers: [][2]string{{"Content-Type", "application/json"}, {"Authorization", "Bearer " + token}}}
}

// mcpProtocolVersion is the revision the benchmark's session asks for: the newest one served
// over a session (Mcp-Session-Id), as MCP clients use today.
const mcpProtocolVersion = "2025-06-18"

// openMCP creates the MCP server "bench" on c's connection, opens a session (initialize, then
// notifications/initialized) and checks one tools/call; pb.mcp is then that tools/call with
// the session's headers, for wrk.
func (pb *plugboard) openMCP(ctx context.Context, c connector) error {
	spec, _ := json.Marshal(map[string]any{"name": "bench", "connector": c.name, "connection": "bench-" + c.name, "enabled": true})
	out, err := pb.srv.API(ctx, "POST", "/v1/mcp-servers", "application/json", spec)
	if err != nil {
		return err
	}
	var created struct{ URL, Token string }
	if err := json.Unmarshal(out, &created); err != nil || created.Token == "" {
		return fmt.Errorf("POST /v1/mcp-servers answered %s", out)
	}
	endpoint := pb.srv.URL + created.URL
	headers := [][2]string{{"Content-Type", "application/json"}, {"Accept", "application/json, text/event-stream"},
		{"Authorization", "Bearer " + created.Token}}
	init := `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"` + mcpProtocolVersion +
		`","capabilities":{},"clientInfo":{"name":"plugboard-httpbench","version":"1"}}}`
	hdr, body, err := mcpPost(ctx, endpoint, headers, init)
	if err != nil {
		return err
	}
	var res struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if json.Unmarshal(body, &res) != nil || res.Result.ProtocolVersion == "" {
		return fmt.Errorf("MCP initialize answered %s", body)
	}
	if sid := hdr.Get("Mcp-Session-Id"); sid != "" {
		headers = append(headers, [2]string{"Mcp-Session-Id", sid})
	}
	headers = append(headers, [2]string{"MCP-Protocol-Version", res.Result.ProtocolVersion})
	if _, _, err := mcpPost(ctx, endpoint, headers, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		return err
	}
	pb.mcp = request{
		body:    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + c.action + `","arguments":{"path":"/item"}}}`,
		headers: headers,
	}
	_, body, err = mcpPost(ctx, endpoint, headers, pb.mcp.body)
	if err != nil {
		return err
	}
	var call struct {
		Result struct {
			IsError           bool            `json:"isError"`
			StructuredContent json.RawMessage `json:"structuredContent"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &call); err != nil || call.Result.IsError {
		return fmt.Errorf("MCP tools/call answered %s", body)
	}
	if err := checkOutput(call.Result.StructuredContent); err != nil {
		return fmt.Errorf("MCP tools/call: %w", err)
	}
	return nil
}

// mcpPost sends one JSON-RPC message and returns the answer's headers and its JSON-RPC
// message, read from the body or from the first data line of an event stream.
func mcpPost(ctx context.Context, url string, headers [][2]string, msg string) (http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(msg))
	if err != nil {
		return nil, nil, err
	}
	for _, h := range headers {
		req.Header.Set(h[0], h[1])
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return nil, nil, fmt.Errorf("MCP %s: %s %s", msg, resp.Status, bytes.TrimSpace(b))
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				return resp.Header, []byte(strings.TrimSpace(data)), nil
			}
		}
		return nil, nil, fmt.Errorf("MCP %s: an event stream without data: %s", msg, b)
	}
	return resp.Header, b, nil
}

// cpuProfile fetches a CPU profile of d from the server's profiler (--pprof-listen, which
// needs no token) into file.
func (pb *plugboard) cpuProfile(ctx context.Context, d time.Duration, file string) error {
	if pb.srv.PprofURL == "" {
		return errors.New("the server printed no profiler address (does it have --pprof-listen?)")
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", pb.srv.PprofURL, max(1, int(d/time.Second)))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || len(b) == 0 {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return os.WriteFile(file, b, 0o644)
}

// dataDir is the data directory of the i-th server under tmp.
func dataDir(tmp string, i int) string { return filepath.Join(tmp, fmt.Sprintf("node%d", i)) }

// counts are the server's action and egress counters (GET /metrics) summed over every
// connector: calls, outbound requests, those answered 200, and the series of calls and
// outbound requests that did not succeed, by their code or status.
type counts struct {
	calls, egress, egress200 int
	failed                   map[string]int // "calls code=..." or "outbound status=..." -> count
}

// counts reads the server's counters. A connector hands upstream statuses back as output, and
// the host answers for an upstream it stopped calling (circuit_open, rate_limited) with a
// response of its own, so a 200 from the action API alone does not prove the upstream
// answered: these counters do.
func (pb *plugboard) counts(ctx context.Context) (counts, error) {
	b, err := pb.srv.API(ctx, "GET", "/metrics", "", nil)
	if err != nil {
		return counts{}, err
	}
	c := counts{failed: map[string]int{}}
	reLabel := map[string]*regexp.Regexp{
		"plugboard_action_calls_total":    regexp.MustCompile(`code="([^"]*)"`),
		"plugboard_egress_requests_total": regexp.MustCompile(`status="([^"]*)"`),
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, "{")
		re := reLabel[name]
		i := strings.LastIndexByte(rest, ' ')
		if !ok || re == nil || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(rest[i+1:], 64)
		m := re.FindStringSubmatch(rest[:i])
		if err != nil || m == nil {
			continue
		}
		n := int(v)
		if name == "plugboard_action_calls_total" {
			c.calls += n
			if m[1] != "ok" {
				c.failed["calls code="+m[1]] += n
			}
		} else {
			c.egress += n
			if m[1] == "200" {
				c.egress200 += n
			} else {
				c.failed["outbound status="+m[1]] += n
			}
		}
	}
	return c, nil
}

// minus is what happened between d and c.
func (c counts) minus(d counts) counts {
	out := counts{calls: c.calls - d.calls, egress: c.egress - d.egress, egress200: c.egress200 - d.egress200, failed: map[string]int{}}
	for k, n := range c.failed {
		if n -= d.failed[k]; n != 0 {
			out.failed[k] = n
		}
	}
	return out
}
