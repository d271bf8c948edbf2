package sdk

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// copyRE is the comment the READMEs put before a fenced copy of an example.
var copyRE = regexp.MustCompile(`^<!-- docs-test: skip copy of (\S+), which`)

// TestReadmesCopyTheExamples checks that every example of every SDK is shown in that SDK's
// README, and that each copy in a README (the SDKs' and the top-level one) is the example file
// byte for byte, so the snippets a reader copies are the ones the SDK tests run.
func TestReadmesCopyTheExamples(t *testing.T) {
	root := filepath.Join("..")
	docs := []string{"README.md", "sdk/typescript/README.md", "sdk/python/README.md", "sdk/go/README.md"}
	shown := map[string]bool{}
	for _, doc := range docs {
		md, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for path, body := range fencedCopies(string(md)) {
			want, err := os.ReadFile(filepath.Join(root, path))
			if err != nil {
				t.Errorf("%s shows a copy of %s, which does not exist: %v", doc, path, err)
				continue
			}
			if body != string(want) {
				t.Errorf("%s: the copy of %s differs from the file; paste the file into the block again", doc, path)
			}
			if strings.HasPrefix(path, filepath.Dir(doc)+"/") {
				shown[path] = true
			}
		}
	}
	examples, err := filepath.Glob(filepath.Join(root, "sdk/*/examples/*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) < 9 {
		t.Fatalf("found %d SDK examples, want the three scenarios in each of the three SDKs", len(examples))
	}
	for _, ex := range examples {
		rel, _ := filepath.Rel(root, ex)
		rel = filepath.ToSlash(rel)
		if fi, err := os.Stat(ex); err == nil && fi.IsDir() {
			rel += "/main.go"
		}
		if !shown[rel] {
			t.Errorf("%s is not shown in its SDK's README", rel)
		}
	}
}

// fencedCopies returns the fenced blocks of md that follow a copyRE comment, by the path the
// comment names.
func fencedCopies(md string) map[string]string {
	out := map[string]string{}
	lines := strings.Split(md, "\n")
	path := ""
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if m := copyRE.FindStringSubmatch(line); m != nil {
			path = m[1]
			continue
		}
		if path == "" || !strings.HasPrefix(line, "```") {
			if line != "" {
				path = ""
			}
			continue
		}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, lines[i])
		}
		out[path] = strings.Join(body, "\n") + "\n"
		path = ""
	}
	return out
}
