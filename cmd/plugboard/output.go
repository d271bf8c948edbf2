package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// printJSON writes a JSON document indented, with a final newline.
func printJSON(w io.Writer, doc json.RawMessage) error {
	if len(doc) == 0 {
		doc = json.RawMessage("null")
	}
	var b bytes.Buffer
	if err := json.Indent(&b, doc, "", "  "); err != nil {
		return fmt.Errorf("printing JSON: %w", err)
	}
	b.WriteByte('\n')
	_, err := w.Write(unescapeHTML(b.Bytes()))
	return err
}

// unescapeHTML turns the \u003c, \u003e and \u0026 escapes that Go's encoder puts in JSON
// strings back into <, > and &, as jq shows them. Every backslash in JSON text starts an escape,
// so the scan steps over escapes whole and never misreads an escaped backslash.
func unescapeHTML(b []byte) []byte {
	out := b[:0:0]
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			out = append(out, b[i])
			continue
		}
		if b[i+1] == 'u' && i+6 <= len(b) {
			switch strings.ToLower(string(b[i+2 : i+6])) {
			case "003c", "003e", "0026":
				r, _ := strconv.ParseUint(string(b[i+2:i+6]), 16, 8)
				out = append(out, byte(r))
				i += 5
				continue
			}
		}
		out = append(out, b[i], b[i+1])
		i++
	}
	return out
}

// printJSONList writes {"field": [docs...]}, the shape of API.md's lists.
func printJSONList(w io.Writer, field string, docs []json.RawMessage) error {
	if docs == nil {
		docs = []json.RawMessage{}
	}
	b, err := json.Marshal(map[string][]json.RawMessage{field: docs})
	if err != nil {
		return err
	}
	return printJSON(w, b)
}

// printDeleted writes the -o json document of a command whose API call answers 204 with no
// body (a delete, a revoke): the fields naming the object, as the API names them, and
// "deleted": true. kv is field, value, field, value...
func printDeleted(w io.Writer, kv ...string) error {
	doc := map[string]any{"deleted": true}
	for i := 0; i+1 < len(kv); i += 2 {
		doc[kv[i]] = kv[i+1]
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return printJSON(w, b)
}

// printJSONValue writes v as indented JSON: the -o json document of a command with no API
// document of its own.
func printJSONValue(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return printJSON(w, b)
}

// table writes aligned columns, kubectl-style: a header row in capitals, then one row a line.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) {
	for i, c := range cols {
		cols[i] = cleanCell(c)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// cleanCell keeps a value on one line and out of the tab stops; empty shows as <none>.
func cleanCell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "<none>"
	}
	return s
}

// details writes "Key:  value" lines aligned, like kubectl describe. Empty values are skipped.
type details struct{ tw *tabwriter.Writer }

func newDetails(w io.Writer) *details {
	return &details{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

func (d *details) add(key, value string) {
	if value != "" {
		fmt.Fprintf(d.tw, "%s:\t%s\n", key, strings.Join(strings.Fields(value), " "))
	}
}

func (d *details) flush() error { return d.tw.Flush() }

// yesNo shows a flag in a table.
func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// humanSize shows a byte count in binary units.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// age shows how long ago t was, as kubectl's AGE column does: 45s, 12m, 5h, 3d.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// timestamp shows a time with its age, e.g. "2026-03-01T10:00:00Z (3d ago)".
func timestamp(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339) + " (" + age(t, now) + " ago)"
}

// shortDigest shortens "sha256:<hex>" to 12 hex digits for tables, as docker shows image IDs.
func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// formatParams shows connection params as k=v, strings unquoted and other values as JSON.
func formatParams(params map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v := params[k]
		s, ok := v.(string)
		if !ok {
			b, _ := json.Marshal(v)
			s = string(b)
		}
		parts = append(parts, k+"="+s)
	}
	return strings.Join(parts, ", ")
}

// isTerminal reports whether f is a terminal (a character device: /dev/null counts too, which
// only costs a prompt or a progress line nobody sees).
func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
