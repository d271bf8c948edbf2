package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/plugboard/plugboard/abi"
	"github.com/plugboard/plugboard/pdk"
)

// maxWatched bounds the items poll_json watches, and so its cursor: only the first maxWatched
// items of the array are compared and remembered; later ones are neither emitted nor
// recorded (a warning is logged), so point path at a newest-first listing.
const maxWatched = 1000

func init() {
	pdk.PollTrigger("poll_json", pollJSON,
		pdk.Title("New items in a JSON list"),
		pdk.Description("Polls GET base_url+path, takes the array at items_pointer and fires once for each item whose id_field value "+
			"was not in the array at the previous poll (in the array's order). The first poll only records the ids. "+
			"The event id is the item's id (numbers rendered canonically, 42 not 42.0), data is the item. "+
			"Only the first 1000 items of the array are watched. Sends If-None-Match when the server gave an ETag."),
		pdk.EventSchema(`{"type":"object","description":"The item as the API returned it"}`),
	)
}

// PollJSONParams are the params of poll_json.
type PollJSONParams struct {
	Path         string            `json:"path,omitempty" jsonschema:"Path appended to the connection's base_url, e.g. /orders?sort=-created; may carry a query string" pattern:"^(/|\\?|$)" default:""`
	ItemsPointer string            `json:"items_pointer,omitempty" jsonschema:"JSON Pointer (RFC 6901) to the array of items in the response, e.g. /data/items; empty when the body is the array" pattern:"^(/.*)?$" default:""`
	IDField      string            `json:"id_field,omitempty" jsonschema:"Name of the field holding each item's id (a string or a number); a value starting with / is a JSON Pointer into the item" minLength:"1" default:"id"`
	TimeField    string            `json:"time_field,omitempty" jsonschema:"Optional field holding the item's time in RFC 3339, used as the event time" default:""`
	Headers      map[string]string `json:"headers,omitempty" jsonschema:"Extra request headers; credentials are added by Plugboard"`
}

// pollJSONCursor is poll_json's cursor.
type pollJSONCursor struct {
	// IDs are the ids of the watched items at the last poll, in the array's order.
	IDs []string `json:"ids"`
	// ETag is the ETag of the last answer, sent as If-None-Match.
	ETag string `json:"etag,omitempty"`
}

func pollJSON(ctx *pdk.Context, p PollJSONParams, cursor *string) (pdk.PollResult, error) {
	var prev pollJSONCursor
	if cursor != nil {
		if err := json.Unmarshal([]byte(*cursor), &prev); err != nil {
			return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "the cursor %q is not a poll_json cursor: %v", *cursor, err)
		}
	}
	base := ctx.Param("base_url")
	if base == "" {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "the connection has no base_url; create a connection with params.base_url")
	}
	target, err := buildURL(base, p.Path, nil)
	if err != nil {
		return pdk.PollResult{}, err
	}
	req := pdk.Request{URL: target, Headers: withHeader(p.Headers, "Accept", "application/json")}
	if hasHeader(p.Headers, "Accept") {
		req.Headers = p.Headers
	}
	if cursor != nil && prev.ETag != "" {
		req.Headers = withHeader(req.Headers, "If-None-Match", prev.ETag)
	}
	resp, err := ctx.HTTP().Do(req)
	if err != nil {
		return pdk.PollResult{}, err
	}
	if resp.Status == 304 && cursor != nil {
		return pdk.PollResult{Cursor: *cursor}, nil
	}
	if !resp.OK() {
		return pdk.PollResult{}, pdk.StatusError(resp)
	}
	items, err := itemsAt(resp.Body, p.ItemsPointer)
	if err != nil {
		return pdk.PollResult{}, err
	}
	if len(items) > maxWatched {
		ctx.Logf(pdk.LogWarn, "poll_json: the array has %d items; only the first %d are watched", len(items), maxWatched)
		items = items[:maxWatched]
	}
	idField := p.IDField
	if idField == "" {
		idField = "id"
	}
	seen := make(map[string]bool, len(prev.IDs))
	for _, id := range prev.IDs {
		seen[id] = true
	}
	next := pollJSONCursor{IDs: make([]string, 0, len(items)), ETag: resp.Header("ETag")}
	recorded := make(map[string]bool, len(items))
	var events []pdk.Event
	for i, raw := range items {
		id, err := itemID(raw, idField)
		if err != nil {
			return pdk.PollResult{}, pdk.Errorf(abi.CodeInvalidInput, "item %d of %s: %v", i, describePointer(p.ItemsPointer), err)
		}
		if recorded[id] {
			continue // an id twice in one answer counts once
		}
		recorded[id] = true
		next.IDs = append(next.IDs, id)
		if cursor == nil || seen[id] {
			continue // the baseline only records
		}
		ev := pdk.Event{ID: id, Data: raw}
		if p.TimeField != "" {
			ev.Time = itemTime(raw, p.TimeField)
		}
		events = append(events, ev)
	}
	b, err := json.Marshal(next)
	if err != nil {
		return pdk.PollResult{}, pdk.Errorf(abi.CodeInternal, "encoding the cursor: %v", err)
	}
	return pdk.PollResult{Events: events, Cursor: string(b)}, nil
}

func describePointer(ptr string) string {
	if ptr == "" {
		return "the response"
	}
	return "items_pointer " + ptr
}

// itemsAt decodes body and returns the elements of the array at the JSON Pointer ptr.
func itemsAt(body []byte, ptr string) ([]json.RawMessage, error) {
	doc := json.RawMessage(bytes.TrimSpace(body))
	if !json.Valid(doc) {
		return nil, pdk.Errorf(abi.CodeUpstreamError, "the response is not JSON")
	}
	v, err := resolve(doc, ptr)
	if err != nil {
		return nil, pdk.Errorf(abi.CodeInvalidInput, "items_pointer %q: %v", ptr, err)
	}
	var items []json.RawMessage
	if len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &items) != nil {
		return nil, pdk.Errorf(abi.CodeInvalidInput, "items_pointer %q resolves to %s, not an array", ptr, kindOf(v))
	}
	return items, nil
}

// resolve evaluates the JSON Pointer ptr (RFC 6901) against doc.
func resolve(doc json.RawMessage, ptr string) (json.RawMessage, error) {
	if ptr == "" {
		return doc, nil
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, fmt.Errorf("a JSON Pointer starts with /")
	}
	cur := doc
	at := ""
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch {
		case len(cur) > 0 && cur[0] == '{':
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(cur, &obj); err != nil {
				return nil, err
			}
			v, ok := obj[tok]
			if !ok {
				return nil, fmt.Errorf("no member %q at %q", tok, cmpOr(at, "the root"))
			}
			cur = v
		case len(cur) > 0 && cur[0] == '[':
			var arr []json.RawMessage
			if err := json.Unmarshal(cur, &arr); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n >= len(arr) || (len(tok) > 1 && tok[0] == '0') {
				return nil, fmt.Errorf("no element %q in the array at %q (length %d)", tok, cmpOr(at, "the root"), len(arr))
			}
			cur = arr[n]
		default:
			return nil, fmt.Errorf("%q is %s, which has no member %q", cmpOr(at, "the root"), kindOf(cur), tok)
		}
		at += "/" + tok
	}
	return cur, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// kindOf names the JSON type of v for messages.
func kindOf(v json.RawMessage) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// itemID returns the item's id as a string: strings as they are, numbers in canonical form.
func itemID(item json.RawMessage, field string) (string, error) {
	if len(item) == 0 || item[0] != '{' {
		return "", fmt.Errorf("the item is %s, not an object", kindOf(item))
	}
	var v json.RawMessage
	if strings.HasPrefix(field, "/") {
		r, err := resolve(item, field)
		if err != nil {
			return "", fmt.Errorf("id_field %q: %v", field, err)
		}
		v = r
	} else {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(item, &obj); err != nil {
			return "", err
		}
		r, ok := obj[field]
		if !ok {
			return "", fmt.Errorf("the item has no %q field (set id_field)", field)
		}
		v = r
	}
	switch kindOf(v) {
	case "a string":
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		if s == "" {
			return "", fmt.Errorf("the %q field is empty", field)
		}
		return s, nil
	case "a number":
		return canonicalNumber(string(v))
	}
	return "", fmt.Errorf("the %q field is %s, not a string or a number", field, kindOf(v))
}

// canonicalNumber renders a JSON number the same way whatever its spelling: integers as
// digits (42 for 42, 42.0 or 4.2e1), others in the shortest form that round-trips.
func canonicalNumber(lit string) (string, error) {
	if isIntegerLiteral(lit) {
		if lit == "-0" {
			return "0", nil
		}
		return lit, nil // JSON integers have no leading zeros: the literal is canonical
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return "", fmt.Errorf("the id %s is not a usable number", lit)
	}
	return strconv.FormatFloat(f, 'f', -1, 64), nil
}

func isIntegerLiteral(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// itemTime returns the RFC 3339 time in the item's field, or the zero time when the field is
// absent or not such a time (the host then uses the time it received the event).
func itemTime(item json.RawMessage, field string) time.Time {
	var v json.RawMessage
	if strings.HasPrefix(field, "/") {
		v, _ = resolve(item, field)
	} else {
		var obj map[string]json.RawMessage
		_ = json.Unmarshal(item, &obj)
		v = obj[field]
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
