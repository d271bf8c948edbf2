package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/plugboard/plugboard/sdk/go/plugboard/plugboardtest"
)

// The shell tests run the completion scripts in real shells, and the scripts run `plugboard
// __complete`: a plugboard on PATH that is this test binary, which runs the command line in
// place of the tests when PLUGBOARD_TEST_RUN_CLI is set (as Go's own os/exec tests re-run
// themselves as a helper process).
func init() {
	if os.Getenv("PLUGBOARD_TEST_RUN_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
	}
}

// cliOnPath returns a directory holding a `plugboard` that runs this test binary as the CLI.
func cliOnPath(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nPLUGBOARD_TEST_RUN_CLI=1 exec '" + self + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "plugboard"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// completeValues runs `plugboard __complete words...` and returns the values and the directive.
func completeValues(t *testing.T, e env, words ...string) ([]string, string) {
	t.Helper()
	r := plugboard(t, e, "", append([]string{"__complete"}, words...)...).ok(t)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("__complete %q: no directive line:\n%s", words, r.stdout)
	}
	var values []string
	for _, l := range lines[:len(lines)-1] {
		v, _, _ := strings.Cut(l, "\t")
		values = append(values, v)
	}
	return values, last[1:]
}

// completionServer is a fake API with a connector (two versions), a connection, a
// subscription's connector, and a config file with two contexts.
func completionServer(t *testing.T) (*plugboardtest.Server, env) {
	t.Helper()
	s := plugboardtest.New(t)
	e := serverEnv(s)
	e["PLUGBOARD_CONFIG"] = writeConfig(t, config{Current: "", Contexts: map[string]*contextEntry{
		"local": {URL: "http://127.0.0.1:8080"}, "prod": {URL: "https://pb.example.com"}}})
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.0.0"))).ok(t)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("github", "1.1.0"))).ok(t)
	plugboard(t, e, "", "connector", "push", writeWasm(t, testManifest("gitlab", "2.0.0"))).ok(t)
	plugboard(t, e, "k", "connection", "create", "gh-main", "--connector", "github", "--api-key-stdin").ok(t)
	return s, e
}

// TestComplete: `plugboard __complete` completes commands, subcommands, flags and their values
// from the command tree, and connector names, versions, actions and connection IDs from the
// server the command would call.
func TestComplete(t *testing.T) {
	_, e := completionServer(t)
	other := plugboardtest.New(t)
	plugboard(t, serverEnv(other), "", "connector", "push", writeWasm(t, testManifest("jira", "1.0.0"))).ok(t)

	tests := []struct {
		name      string
		words     []string
		want      []string
		directive string
	}{
		{"commands", []string{"conn"}, []string{"connector", "connection"}, ""},
		{"hidden commands are left out", []string{"k"}, []string{"key"}, ""},
		{"subcommands", []string{"connector", "p"}, []string{"push"}, ""},
		{"a flag between group and verb", []string{"--context", "prod", "connector", "a"}, []string{"activate", "actions"}, ""},
		{"a leaf's own flags, then the global ones", []string{"connector", "push", "x.wasm", "--a"}, []string{"--activate", "--approve-capabilities"}, ""},
		{"global flags of a group", []string{"connector", "--"}, []string{"--context", "--correlation-id", "--token", "--url"}, ""},
		{"a flag's fixed values", []string{"connector", "list", "--output", ""}, []string{"table", "json"}, ""},
		{"after the one-letter alias", []string{"connector", "list", "-o", "j"}, []string{"json"}, ""},
		{"--flag=value", []string{"connector", "list", "--output=j"}, []string{"--output=json"}, ""},
		{"connector names from the server", []string{"connector", "get", "git"}, []string{"github", "gitlab"}, ""},
		{"versions of the connector typed before, newest first", []string{"connector", "activate", "github", ""}, []string{"1.1.0", "1.0.0"}, ""},
		{"actions", []string{"invoke", "github", "--input", "{}", ""}, []string{"create_issue", "get_repo"}, ""},
		{"connection IDs", []string{"invoke", "github", "get_repo", "--connection", ""}, []string{"gh-main"}, ""},
		{"--connector values", []string{"connection", "create", "x", "--connector=gitl"}, []string{"--connector=gitlab"}, ""},
		{"--url on the line picks the server", []string{"--url", other.URL, "connector", "get", ""}, []string{"jira"}, ""},
		{"contexts from the config file", []string{"connector", "list", "--context", ""}, []string{"local", "prod"}, ""},
		{"context use", []string{"context", "use", "p"}, []string{"prod"}, ""},
		{"connector init --lang", []string{"connector", "init", "x", "--lang", ""}, []string{"go", "assemblyscript", "c", "rust"}, ""},
		{"no more arguments", []string{"connector", "get", "github", ""}, nil, ""},
		{"a plugin file", []string{"connector", "push", ""}, nil, "files .wasm"},
		{"a directory", []string{"store", "check", "--data", ""}, nil, "dirs"},
		{"a directory by its placeholder", []string{"dev", "--watch", ""}, nil, "dirs"},
		{"help walks the tree", []string{"help", "connector", "p"}, []string{"push"}, ""},
		{"completion shells", []string{"completion", ""}, []string{"bash", "zsh", "fish"}, ""},
		{"an unknown command", []string{"nope", ""}, nil, ""},
		{"after --, no flags", []string{"connector", "push", "--", "-"}, nil, "files .wasm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, directive := completeValues(t, e, tt.words...)
			if !slices.Equal(got, tt.want) || directive != tt.directive {
				t.Errorf("__complete %q = %q :%s, want %q :%s", tt.words, got, directive, tt.want, tt.directive)
			}
		})
	}

	t.Run("a server that is down offers nothing, at once", func(t *testing.T) {
		down := plugboardtest.New(t)
		down.Close()
		start := time.Now()
		got, _ := completeValues(t, env{"PLUGBOARD_URL": down.URL}, "connector", "get", "")
		if len(got) != 0 || time.Since(start) > completionTimeout+time.Second {
			t.Errorf("got %q after %s", got, time.Since(start))
		}
	})
	t.Run("descriptions", func(t *testing.T) {
		r := plugboard(t, e, "", "__complete", "connector", "get", "gith").ok(t)
		if r.stdout != "github\tTest github\n:\n" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
}

// bashComplete runs the bash script in a real bash, as bash runs it on TAB: COMP_WORDS split
// at the default COMP_WORDBREAKS, COMP_CWORD, COMP_LINE and COMP_POINT, then prints COMPREPLY.
func bashComplete(t *testing.T, e env, path, script, line string) []string {
	t.Helper()
	words, cword := bashWords(line)
	var arr strings.Builder
	for _, w := range words {
		arr.WriteString(" " + shellQuote(w))
	}
	prog := script + "\n" +
		"COMP_WORDS=(" + arr.String() + ")\n" +
		"COMP_CWORD=" + strconv.Itoa(cword) + "\n" +
		"COMP_LINE=" + shellQuote(line) + "\n" +
		"COMP_POINT=${#COMP_LINE}\n" +
		"__plugboard_complete\n" +
		"printf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command("bash", "--norc", "--noprofile", "-c", prog)
	cmd.Env = []string{"PATH=" + path + ":/usr/bin:/bin"}
	for k, v := range e {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	var got []string
	for l := range strings.Lines(string(out)) {
		if l = strings.TrimSuffix(l, "\n"); l != "" {
			got = append(got, l)
		}
	}
	return got
}

// bashWords splits line as bash does for completion with the default COMP_WORDBREAKS: at
// blanks, and = and : are words of their own. The last word is the one at the cursor (the end).
func bashWords(line string) ([]string, int) {
	var words []string
	cur := ""
	flush := func() {
		if cur != "" {
			words = append(words, cur)
			cur = ""
		}
	}
	for _, r := range line {
		switch r {
		case ' ':
			flush()
		case '=', ':':
			flush()
			words = append(words, string(r))
		default:
			cur += string(r)
		}
	}
	flush()
	if strings.HasSuffix(line, " ") || len(words) == 0 {
		words = append(words, "")
	}
	return words, len(words) - 1
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// TestCompletionBash loads `plugboard completion bash` in a real bash and completes as a TAB
// would: commands, subcommands, flags, --flag=value split by bash at the =, and connector names
// from the server.
func TestCompletionBash(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash is not on PATH")
	}
	_, e := completionServer(t)
	script := plugboard(t, nil, "", "completion", "bash").ok(t).stdout
	path := cliOnPath(t)

	// The script registers the function for plugboard.
	out, err := exec.Command("bash", "--norc", "-c", script+"\ncomplete -p plugboard").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "complete -F __plugboard_complete plugboard" {
		t.Fatalf("complete -p plugboard: %v %s", err, out)
	}

	tests := []struct {
		line string
		want []string
	}{
		{"plugboard conn", []string{"connector", "connection"}},
		{"plugboard connector p", []string{"push"}},
		{"plugboard connector list --out", []string{"--output"}},
		{"plugboard connector list --output ", []string{"table", "json"}},
		// bash splits --output=j into --output, =, j: the candidate replaces only "j".
		{"plugboard connector list --output=j", []string{"json"}},
		// With the cursor right after =, readline replaces the empty text after it.
		{"plugboard connector list --output=", []string{"table", "json"}},
		{"plugboard connector get ", []string{"github", "gitlab"}},
		{"plugboard connector activate github ", []string{"1.1.0", "1.0.0"}},
		{"plugboard invoke github get_repo --connection ", []string{"gh-main"}},
		{"plugboard --context prod connector ver", []string{"versions"}},
		{"plugboard nope ", nil},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			if got := bashComplete(t, e, path, script, tt.line); !slices.Equal(got, tt.want) {
				t.Errorf("completing %q: %q, want %q", tt.line, got, tt.want)
			}
		})
	}
	t.Run("file names for a plugin", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "hello.wasm"), nil, 0o644)
		os.WriteFile(filepath.Join(dir, "hello.go"), nil, 0o644)
		os.Mkdir(filepath.Join(dir, "build"), 0o755)
		got := bashComplete(t, e, path, "cd "+shellQuote(dir)+"\n"+script, "plugboard connector push ")
		slices.Sort(got)
		if !slices.Equal(got, []string{"build", "hello.wasm"}) {
			t.Errorf("completing a plugin file: %q", got)
		}
	})
}

// needShell returns the path of a shell: missing fails the test in CI (.ci/run installs it)
// and skips it elsewhere.
func needShell(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing (Debian package %s); .ci/run installs it", name, name)
		}
		t.Skipf("%s is missing (Debian package %s; .ci/run installs it)", name, name)
	}
	return p
}

// TestCompletionZsh checks the zsh script with zsh -n, then runs its function in a real zsh
// with the completion system's _describe and _files stubbed to print what they were given.
func TestCompletionZsh(t *testing.T) {
	zsh := needShell(t, "zsh")
	_, e := completionServer(t)
	script := plugboard(t, nil, "", "completion", "zsh").ok(t).stdout
	if !strings.HasPrefix(script, "#compdef plugboard\n") {
		t.Errorf("the zsh script does not start with #compdef:\n%s", script)
	}
	file := filepath.Join(t.TempDir(), "_plugboard")
	os.WriteFile(file, []byte(script), 0o644)
	if out, err := exec.Command(zsh, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	path := cliOnPath(t)
	tests := []struct {
		words []string // words[CURRENT] is the last
		want  string
	}{
		{[]string{"plugboard", "conn"}, "describe: connector:Upload connector plugins and manage their versions|connection:Create and manage connections (credentials)|"},
		{[]string{"plugboard", "connector", "p"}, "describe: push:Upload a connector plugin|"},
		{[]string{"plugboard", "connector", "list", "--output=j"}, "describe: --output=json:the API document, for scripts|"},
		{[]string{"plugboard", "connector", "get", ""}, "describe: github:Test github|gitlab:Test gitlab|"},
		{[]string{"plugboard", "connector", "push", ""}, "files: -g *.wasm"},
		{[]string{"plugboard", "dev", "--watch", ""}, "files: -/"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.words, " "), func(t *testing.T) {
			var arr strings.Builder
			for _, w := range tt.words {
				arr.WriteString(" " + shellQuote(w))
			}
			prog := "compdef() { :; }\n" + // the script registers itself when sourced
				"source " + shellQuote(file) + "\n" +
				"_describe() { local -a c; c=(\"${(@P)4}\"); print -rn -- 'describe: '; printf '%s|' \"${c[@]}\"; }\n" +
				"_files() { print -rn -- \"files: $*\"; }\n" +
				"words=(" + arr.String() + ")\nCURRENT=" + strconv.Itoa(len(tt.words)) + "\n_plugboard\n"
			cmd := exec.Command(zsh, "-f", "-c", prog)
			cmd.Env = []string{"PATH=" + path + ":/usr/bin:/bin"}
			for k, v := range e {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			if err != nil || string(out) != tt.want {
				t.Errorf("zsh completing %q: %v\n%q\nwant %q", tt.words, err, out, tt.want)
			}
		})
	}
}

// TestCompletionFish checks the fish script with fish -n, then asks a real fish for the
// completions of command lines (complete -C).
func TestCompletionFish(t *testing.T) {
	fish := needShell(t, "fish")
	_, e := completionServer(t)
	script := plugboard(t, nil, "", "completion", "fish").ok(t).stdout
	file := filepath.Join(t.TempDir(), "plugboard.fish")
	os.WriteFile(file, []byte(script), 0o644)
	if out, err := exec.Command(fish, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("fish -n: %v\n%s", err, out)
	}
	path := cliOnPath(t)
	tests := []struct {
		line string
		want []string
	}{
		{"plugboard conn", []string{"connector\tUpload connector plugins and manage their versions", "connection\tCreate and manage connections (credentials)"}},
		{"plugboard connector p", []string{"push\tUpload a connector plugin"}},
		{"plugboard connector list --output=", []string{"--output=json\tthe API document, for scripts", "--output=table\tfor people"}},
		{"plugboard connector get ", []string{"github\tTest github", "gitlab\tTest gitlab"}},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			cmd := exec.Command(fish, "--no-config", "-c", "source "+shellQuote(file)+"; complete -C "+shellQuote(tt.line))
			cmd.Env = []string{"PATH=" + path + ":/usr/bin:/bin", "HOME=" + t.TempDir()}
			for k, v := range e {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			got := strings.Split(strings.TrimSpace(string(out)), "\n")
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tt.want))
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("fish completing %q: %v\n%q\nwant %q", tt.line, err, got, want)
			}
		})
	}
}
