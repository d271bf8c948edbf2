package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/plugboard/plugboard/cmd/plugboard/internal/scaffold"
)

// Shell completion works as gh's and kubectl's does: the script a shell loads is a thin shim
// that hands the words of the command line to the hidden `plugboard __complete WORDS... CURRENT`
// and offers what it prints. So the candidates come from the command tree of the binary that
// answers (its commands, subcommands and flags, never a stale copy), and argument values such
// as connector names come from the server the command would call, with a short timeout.
//
// The __complete protocol: one candidate a line, "VALUE" or "VALUE<TAB>DESCRIPTION", then a
// last line ":DIRECTIVE": ":" (offer the candidates), ":nospace" (do not add a space after the
// candidate), ":files" (complete file names instead, ":files .wasm" only those ending so) or
// ":dirs" (directory names).

// completionTimeout bounds the server calls of one completion: a TAB must not hang on a server
// that is down.
const completionTimeout = 2 * time.Second

// candidate is one completion.
type candidate struct{ value, desc string }

// completions is the answer to one __complete.
type completions struct {
	items     []candidate
	directive string // "", "nospace", "files", "files .EXT" or "dirs"
}

func filesOf(ext string) completions {
	if ext == "" {
		return completions{directive: "files"}
	}
	return completions{directive: "files " + ext}
}

func (c *cli) completeCommand() *command {
	return &command{
		name:     "__complete",
		args:     "WORDS... CURRENT",
		short:    "Print the completions of a command line (used by the completion scripts)",
		example:  "plugboard __complete connector p",
		hidden:   true,
		ownFlags: true, // the words are a command line to read, not flags for this command
		run: func(ctx context.Context, args []string) error {
			comp := c.complete(ctx, args)
			var b strings.Builder
			for _, it := range comp.items {
				b.WriteString(it.value)
				if d := strings.Join(strings.Fields(it.desc), " "); d != "" {
					b.WriteString("\t" + d)
				}
				b.WriteByte('\n')
			}
			b.WriteString(":" + comp.directive + "\n")
			_, err := fmt.Fprint(c.stdout, b.String())
			return err
		},
	}
}

// complete returns the completions of the last of words, the command line (without the
// program name) up to the cursor. Flags before it are read as the command would read them, so
// --url, --token and --context apply to the server calls.
func (c *cli) complete(ctx context.Context, words []string) completions {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	cmd := c.root()
	fs := c.newFlagSet(cmd)
	var pos []string
	dashdash := false
	for i := 0; i < len(before); i++ {
		w := before[i]
		switch {
		case !dashdash && w == "--":
			dashdash = true
		case !dashdash && len(w) > 1 && w[0] == '-':
			name, value, hasValue := strings.Cut(strings.TrimLeft(w, "-"), "=")
			f := fs.Lookup(name)
			if f == nil {
				continue
			}
			if !hasValue && !isBoolFlag(f) {
				if i+1 == len(before) {
					return c.completeFlagValue(ctx, cmd, fs, f, pos, cur, "")
				}
				i++
				value = before[i]
			}
			if fs.global[name] {
				_ = fs.Set(name, value) // so the server calls below go where the command would
			}
		case cmd.sub != nil:
			next := cmd.lookup(w)
			if next == nil {
				return completions{}
			}
			cmd = next
			switch {
			case cmd.name == "serve" && cmd.ownFlags:
				sfs := serveFlags()
				if sfs == nil {
					return completions{}
				}
				fs = &flagSet{FlagSet: sfs, short: map[string]string{}, global: map[string]bool{}}
			case cmd.ownFlags:
				return completions{} // a command that reads its own flags: nothing known to offer
			default:
				fs = c.newFlagSet(cmd)
			}
		default:
			pos = append(pos, w)
		}
	}
	if !dashdash && strings.HasPrefix(cur, "-") {
		if name, value, ok := strings.Cut(strings.TrimLeft(cur, "-"), "="); ok {
			f := fs.Lookup(name)
			if f == nil {
				return completions{}
			}
			return c.completeFlagValue(ctx, cmd, fs, f, pos, value, cur[:len(cur)-len(value)])
		}
		return flagCandidates(fs, cmd, cur)
	}
	if cmd.sub != nil {
		return subcommandCandidates(cmd, cur)
	}
	return c.completeArg(ctx, cmd, pos, cur)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagCandidates are the long flags of cmd that start with cur: a group's global flags, a
// leaf's own then global ones. One-letter aliases are left out (-o is --output).
func flagCandidates(fs *flagSet, cmd *command, cur string) completions {
	aliases := map[string]bool{}
	for _, s := range fs.short {
		aliases[s] = true
	}
	var own, global []candidate
	fs.VisitAll(func(f *flag.Flag) {
		if aliases[f.Name] || !strings.HasPrefix("--"+f.Name, cur) {
			return
		}
		_, usage := flag.UnquoteUsage(f)
		cand := candidate{"--" + f.Name, usage}
		if fs.global[f.Name] {
			global = append(global, cand)
		} else if cmd.sub == nil {
			own = append(own, cand)
		}
	})
	return completions{items: append(own, global...)}
}

// subcommandCandidates are the visible subcommands of cmd that start with cur.
func subcommandCandidates(cmd *command, cur string) completions {
	var out completions
	for _, s := range cmd.sub {
		if !s.hidden && strings.HasPrefix(s.name, cur) {
			out.items = append(out.items, candidate{s.name, s.short})
		}
	}
	return out
}

// fixedValues are the values of the flags that take one of a few words.
var fixedValues = map[string][]candidate{
	"output": {{"table", "for people"}, {"json", "the API document, for scripts"}},
	"auth":   {{"none", ""}, {"api_key", ""}, {"basic", ""}, {"oauth2", ""}},
	"grant":  {{"authorization_code", "a person consents in a browser"}, {"client_credentials", "the client's own token"}},
	"role": {{"admin", "everything"}, {"author", "connectors and their versions"}, {"connections", "connections and their secrets"},
		{"invoker", "calls actions and subscribes"}, {"reader", "reads everything but secrets"}},
	"log-level":  {{"debug", ""}, {"info", ""}, {"warn", ""}, {"error", ""}},
	"log-format": {{"text", ""}, {"json", ""}},
}

// dirFlags and fileFlags take a path whose placeholder does not say so.
var (
	dirFlags  = map[string]bool{"data": true, "from": true, "connectors-dir": true, "watch": true}
	fileFlags = map[string]bool{"catalog": true, "master-key-file": true, "nats-creds": true, "nats-tls-ca": true,
		"tls-cert": true, "tls-key": true}
)

// completeFlagValue completes the value of flag f; prefix ("--output=") is what stands before
// the value in the word being completed, and is put back in front of each candidate.
func (c *cli) completeFlagValue(ctx context.Context, cmd *command, fs *flagSet, f *flag.Flag, pos []string, cur, prefix string) completions {
	name := f.Name
	for long, short := range fs.short {
		if short == name {
			name = long
		}
	}
	var items []candidate
	placeholder, _ := flag.UnquoteUsage(f)
	switch {
	case fixedValues[name] != nil:
		items = fixedValues[name]
	case name == "connector":
		items = c.dynamic(ctx, "connectors", nil)
	case name == "connection":
		items = c.dynamic(ctx, "connections", nil)
	case name == "context":
		items = c.contextCandidates()
	case name == "lang":
		for _, l := range scaffold.Languages {
			items = append(items, candidate{l, langHelp[l]})
		}
	case (name == "version" || name == "canary") && len(pos) > 0:
		items = c.dynamic(ctx, "versions", pos[:1])
	case dirFlags[name] || placeholder == "DIR":
		return completions{directive: "dirs"}
	case fileFlags[name] || placeholder == "FILE" || placeholder == "PATH":
		return filesOf("")
	default:
		return completions{}
	}
	var out completions
	for _, it := range items {
		if strings.HasPrefix(it.value, cur) {
			out.items = append(out.items, candidate{prefix + it.value, it.desc})
		}
	}
	return out
}

// argKinds names what each positional argument of a command is, for the ones that complete.
var argKinds = map[string][]string{
	"connector get":            {"connectors"},
	"connector versions":       {"connectors"},
	"connector actions":        {"connectors"},
	"connector activate":       {"connectors", "versions"},
	"connector delete-version": {"connectors", "versions"},
	"connection get":           {"connections"},
	"connection update":        {"connections"},
	"connection rotate":        {"connections"},
	"connection reauthorize":   {"connections"},
	"connection delete":        {"connections"},
	"invoke":                   {"connectors", "actions"},
	"subscribe":                {"connectors", "triggers"},
	"subscriptions":            {"subscriptions"},
	"unsubscribe":              {"subscriptions"},
	"events pull":              {"subscriptions"},
	"events ack":               {"subscriptions"},
	"events replay":            {"subscriptions"},
	"key get":                  {"keys"},
	"key revoke":               {"keys"},
	"keys get":                 {"keys"},
	"keys revoke":              {"keys"},
	"mcp enable":               {"mcp_servers"},
	"mcp disable":              {"mcp_servers"},
	"mcp rotate-token":         {"mcp_servers"},
	"mcp delete":               {"mcp_servers"},
	"mcp install":              {"catalog"},
	"context use":              {"contexts"},
	"context remove":           {"contexts"},
}

// completeArg completes the positional argument after pos of the leaf cmd.
func (c *cli) completeArg(ctx context.Context, cmd *command, pos []string, cur string) completions {
	path := strings.TrimPrefix(cmd.fullName(), "plugboard ")
	if path == "help" {
		node := c.root()
		for _, name := range pos {
			if node = node.lookup(name); node == nil || node.sub == nil {
				return completions{}
			}
		}
		return subcommandCandidates(node, cur)
	}
	var items []candidate
	if kinds := argKinds[path]; len(pos) < len(kinds) {
		switch kind := kinds[len(pos)]; kind {
		case "contexts":
			items = c.contextCandidates()
		case "catalog":
			items = c.catalogCandidates()
		default:
			items = c.dynamic(ctx, kind, pos)
		}
	} else if len(pos) == 0 || strings.Contains(cmd.args, "...") {
		// By the placeholder of the usage line: FILE.wasm, FILE, [FILE].
		switch a := cmd.args; {
		case strings.Contains(a, "FILE.wasm"):
			return filesOf(".wasm")
		case strings.Contains(a, "FILE"):
			return filesOf("")
		case strings.Contains(a, "DIR"):
			return completions{directive: "dirs"}
		}
	}
	var out completions
	for _, it := range items {
		if strings.HasPrefix(it.value, cur) {
			out.items = append(out.items, it)
		}
	}
	return out
}

// dynamic asks the server for the names of kind ("connectors", "versions" of args[0], ...);
// nothing when the server does not answer within completionTimeout.
func (c *cli) dynamic(ctx context.Context, kind string, args []string) []candidate {
	if c.endpoint().err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	api := c.api()
	var out []candidate
	switch kind {
	case "connectors":
		list, _ := api.ListConnectors(ctx)
		for _, x := range list {
			out = append(out, candidate{x.Name, x.Title})
		}
	case "versions", "actions", "triggers":
		if len(args) == 0 {
			return nil
		}
		if kind == "actions" {
			list, _ := api.ListActions(ctx, args[0])
			for _, a := range list {
				out = append(out, candidate{a.Name, a.Title})
			}
			return out
		}
		con, err := api.GetConnector(ctx, args[0])
		if err != nil {
			return nil
		}
		if kind == "triggers" {
			if con.Manifest != nil {
				for _, t := range con.Manifest.Triggers {
					out = append(out, candidate{t.Name, t.Kind + " trigger: " + t.Title})
				}
			}
			return out
		}
		for _, v := range slices.Backward(con.Versions) { // newest first
			desc := ""
			if v.Active {
				desc = "active"
			}
			out = append(out, candidate{v.Version, desc})
		}
	case "connections":
		list, _ := api.ListConnections(ctx)
		for _, x := range list {
			out = append(out, candidate{x.ID, strings.Join(x.Connectors, ",") + " (" + x.Auth.Type + ", " + x.Status + ")"})
		}
	case "subscriptions":
		list, _ := api.ListSubscriptions(ctx)
		for _, x := range list {
			out = append(out, candidate{x.ID, x.Connector + "." + x.Trigger + " (" + x.Delivery.Type + ")"})
		}
	case "keys":
		list, _ := api.ListKeys(ctx)
		for _, x := range list {
			out = append(out, candidate{x.ID, x.Name + " (" + x.Role + ")"})
		}
	case "mcp_servers":
		list, _ := api.ListMCPServers(ctx)
		for _, x := range list {
			out = append(out, candidate{x.Name, x.Connector})
		}
	}
	return out
}

// contextCandidates are the names of the config file's contexts.
func (c *cli) contextCandidates() []candidate {
	cfg, err := c.loadConfig()
	if err != nil {
		return nil
	}
	var out []candidate
	for _, n := range cfg.names() {
		out = append(out, candidate{n, cfg.Contexts[n].URL})
	}
	return out
}

// catalogCandidates are the servers of the catalog `mcp install` would read.
func (c *cli) catalogCandidates() []candidate {
	idx, err := loadCatalog(c.catalogPath(""))
	if err != nil {
		return nil
	}
	var out []candidate
	for _, e := range idx.Servers {
		out = append(out, candidate{e.Name, e.Description})
	}
	return out
}

// completionCommand is `plugboard completion bash|zsh|fish`.
func (c *cli) completionCommand() *command {
	shell := func(name, short, long, example string, script string) *command {
		return &command{
			name:    name,
			short:   short,
			long:    long,
			example: example,
			run: func(ctx context.Context, args []string) error {
				_, err := fmt.Fprint(c.stdout, script)
				return err
			},
		}
	}
	return &command{
		name:  "completion",
		short: "Print a shell completion script (bash, zsh, fish)",
		long: "Print the script that makes a shell complete plugboard's commands, subcommands, flags and\n" +
			"their values: connector names, versions, actions, connection and subscription IDs, keys,\n" +
			"MCP servers and contexts, read from the server the command would call (2 s at most; nothing\n" +
			"is offered when it does not answer). The script asks the plugboard binary on your PATH, so\n" +
			"it never goes stale when the binary is upgraded. See each shell's help for how to install it.",
		example: "# bash, for this shell only\n" +
			"source <(plugboard completion bash)\n" +
			"# zsh, for every new shell\n" +
			"plugboard completion zsh > \"${fpath[1]}/_plugboard\"\n" +
			"# fish\n" +
			"plugboard completion fish > ~/.config/fish/completions/plugboard.fish",
		sub: []*command{
			shell("bash", "Print the bash completion script",
				"Print the bash completion script. Load it in the current shell with\n"+
					"`source <(plugboard completion bash)`; add that line to ~/.bashrc for every new shell, or\n"+
					"install it where bash-completion finds it (it loads it on the first TAB after plugboard).\n"+
					"Needs bash 4.1 or later.",
				"source <(plugboard completion bash)\n"+
					"echo 'source <(plugboard completion bash)' >> ~/.bashrc\n"+
					"# Or once for every user, with the bash-completion package\n"+
					"plugboard completion bash | sudo tee /usr/share/bash-completion/completions/plugboard > /dev/null\n"+
					"# Or for you alone, with the bash-completion package\n"+
					"plugboard completion bash > ~/.local/share/bash-completion/completions/plugboard",
				bashCompletion),
			shell("zsh", "Print the zsh completion script",
				"Print the zsh completion script. Source it after compinit, or save it as _plugboard in a\n"+
					"directory of $fpath (before compinit runs) so zsh autoloads it. Completions show their\n"+
					"descriptions.",
				"# For the current shell (compinit must have run, as it has with oh-my-zsh)\n"+
					"source <(plugboard completion zsh)\n"+
					"# For every new shell\n"+
					"mkdir -p ~/.zfunc && plugboard completion zsh > ~/.zfunc/_plugboard\n"+
					"echo 'fpath=(~/.zfunc $fpath); autoload -Uz compinit; compinit' >> ~/.zshrc",
				zshCompletion),
			shell("fish", "Print the fish completion script",
				"Print the fish completion script. Load it in the current shell with\n"+
					"`plugboard completion fish | source`, or save it in ~/.config/fish/completions/ for every\n"+
					"new shell. Completions show their descriptions.",
				"plugboard completion fish | source\n"+
					"plugboard completion fish > ~/.config/fish/completions/plugboard.fish",
				fishCompletion),
		},
	}
}

// bashCompletion is the bash script. bash splits words at COMP_WORDBREAKS (= and :), so the
// function glues back the words the line has no blank between (--output=json is one word for
// plugboard), and strips from each candidate what stands before the last word break of the
// current word, the part readline keeps.
const bashCompletion = `# bash completion for plugboard; generated by ` + "`plugboard completion bash`" + `.
# Load it with: source <(plugboard completion bash)
__plugboard_complete() {
    local line=${COMP_LINE:0:COMP_POINT} rest w i glued
    local -a words=()
    rest=$line
    for (( i = 0; i <= COMP_CWORD; i++ )); do
        w=${COMP_WORDS[i]}
        glued=1
        [[ $rest == [[:space:]]* ]] && glued=0
        rest=${rest#"${rest%%[![:space:]]*}"}
        (( i == COMP_CWORD )) && w=$rest
        rest=${rest#"$w"}
        if (( i > 0 && glued )); then
            words[${#words[@]}-1]+=$w
        else
            words+=("$w")
        fi
    done
    # Readline replaces only the part of the word after its last COMP_WORDBREAKS character.
    local full=${words[${#words[@]}-1]}
    local cur=${full##*[$COMP_WORDBREAKS]}
    local prefix=${full:0:${#full}-${#cur}}

    local out directive
    out=$("${words[0]}" __complete "${words[@]:1}" 2>/dev/null) || return 0
    directive=${out##*$'\n'}
    if [[ $out == *$'\n'* ]]; then out=${out%$'\n'*}; else out=; fi
    directive=${directive#:}

    COMPREPLY=()
    case $directive in
    files*)
        local ext=${directive#files}
        ext=${ext# }
        compopt -o filenames 2>/dev/null
        if [[ -n $ext ]]; then
            mapfile -t COMPREPLY < <(compgen -f -X "!*$ext" -- "$cur"; compgen -d -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        fi
        return 0
        ;;
    dirs)
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        return 0
        ;;
    esac
    local cand
    while IFS= read -r cand; do
        cand=${cand%%$'\t'*}
        [[ -n $cand && $cand == "$prefix"* ]] || continue
        cand=${cand#"$prefix"}
        [[ $cand == "$cur"* ]] && COMPREPLY+=("$cand")
    done <<< "$out"
    [[ $directive == nospace ]] && compopt -o nospace 2>/dev/null
    return 0
}
complete -F __plugboard_complete plugboard
`

// zshCompletion is the zsh script: autoloaded from $fpath as _plugboard, or sourced.
const zshCompletion = `#compdef plugboard
# zsh completion for plugboard; generated by ` + "`plugboard completion zsh`" + `.
# Save it as _plugboard in a directory of $fpath, or: source <(plugboard completion zsh)
_plugboard() {
    local out directive line value desc
    local -a lines cands
    out=$("${words[1]}" __complete "${(@)words[2,CURRENT]}" 2>/dev/null) || return 1
    lines=("${(@f)out}")
    directive=${lines[-1]#:}
    lines=("${(@)lines[1,-2]}")
    case $directive in
    files\ *) _files -g "*${directive#files }"; return ;;
    files) _files; return ;;
    dirs) _files -/; return ;;
    esac
    for line in "${lines[@]}"; do
        [[ -z $line ]] && continue
        value=${line%%$'\t'*}
        desc=
        [[ $line == *$'\t'* ]] && desc=${line#*$'\t'}
        if [[ -n $desc ]]; then
            cands+=("${value//:/\\:}:$desc")
        else
            cands+=("${value//:/\\:}")
        fi
    done
    (( ${#cands} )) || return 1
    if [[ $directive == nospace ]]; then
        _describe -t plugboard 'plugboard' cands -S ''
    else
        _describe -t plugboard 'plugboard' cands
    fi
}
if [[ ${zsh_eval_context[-1]} == loadautofunc ]]; then
    _plugboard "$@"
else
    compdef _plugboard plugboard
fi
`

// fishCompletion is the fish script.
const fishCompletion = `# fish completion for plugboard; generated by ` + "`plugboard completion fish`" + `.
# Load it with: plugboard completion fish | source
function __plugboard_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l out (command $words[1] __complete $words[2..-1] "$cur" 2>/dev/null)
    or return
    set -l directive (string sub -s 2 -- $out[-1])
    set -e out[-1]
    switch "$directive"
        case 'files *'
            __fish_complete_suffix (string sub -s 7 -- $directive)
        case files
            __fish_complete_path "$cur"
        case dirs
            __fish_complete_directories "$cur"
        case '*'
            printf '%s\n' $out
    end
end
complete -c plugboard -f -a '(__plugboard_complete)'
`
