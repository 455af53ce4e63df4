package main

import (
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// The command lines shown in the docs must be ones the programs take.
// TestDocCommandLines reads every command line of README.md, BENCHMARKS.md,
// docs/*.md (fenced code blocks and inline `code`), the comments of
// examples/ and the Example of every baton command, and parses each with
// the real parser of its program, without running anything:
//
//   - baton (also as bin/baton, go run ./starter, docker compose run
//     baton-cli): the real cobra command tree finds the command, parses the
//     flags (an unknown flag or a bad value fails), and the command's Args
//     validator takes the arguments (e.g. one account, not two).
//   - worker, stampd, load, go run ./cmd/{demo,bench,pgcluster}: their flag
//     sets are read from their source (every fs.String("name", ...), ...
//     on the flag.FlagSet of each subcommand), rebuilt with the same types
//     and names, and the line is parsed by Go's flag package as the program
//     would, stray arguments refused. (Their flag sets live in package main
//     of other programs; building the six binaries to run them with --help
//     costs about 20 s of CPU per test run, so their source is read.)
//
// Conventions for lines that are not literal invocations:
//
//   - Placeholders are words in capitals (ACCOUNT, STAMP, FILE, WHY, A,
//     WORKFLOW-ID, ACCOUNT|WORKFLOW-ID), "...", and shell variables ($L,
//     "$(cat f)"); each is replaced by a sample value of the type its flag
//     takes (a duration for --flush-deadline DURATION, ...).
//   - a|b|c where a command is expected means each of a, b and c
//     (`baton approve|reject|abort ACCOUNT --reason WHY`; in prose also
//     `stampd serve | location`).
//   - [x] marks x as optional; it is checked as if given.
//   - Inline code that is only a command's name (`baton watch`, `load
//     audit`) names the command: it must exist; its arguments are not
//     checked.
//   - In a code block, a shell comment (#) and anything after three or more
//     spaces (the annotation column of a diagram) are not part of the
//     command; a pipe, &&, ; or & ends it.
func TestDocCommandLines(t *testing.T) {
	var lines []docLine
	files := docFiles(t)
	for _, f := range files {
		lines = append(lines, extractFile(t, f)...)
	}
	lines = append(lines, cobraExamples()...)
	tools := loadFlagTools(t)
	checked := map[string]int{}
	for _, l := range lines {
		for _, inv := range l.invocations() {
			checked[inv.prog]++
			if err := inv.check(tools); err != nil {
				t.Errorf("%s: `%s`: %v", l.where, l.text, err)
			}
			// One grammar in the docs: the account is the argument
			// (--account is only an alias, for scripts).
			if inv.prog == "baton" &&
				slices.ContainsFunc(
					inv.args,
					func(a string) bool { return a == "--account" || strings.HasPrefix(a, "--account=") },
				) {
				t.Errorf(
					"%s: `%s`: shows --account; write the account as the argument, baton COMMAND ACCOUNT",
					l.where,
					l.text,
				)
			}
			if testing.Verbose() {
				t.Logf("%s: %s %s", l.where, inv.prog, strings.Join(inv.args, " "))
			}
		}
	}
	t.Logf(
		"checked command lines per program: %v (from %d files and the baton commands' examples)",
		checked,
		len(files),
	)
	// The extraction must find what is there (a change of the docs'
	// layout must not make this test check nothing).
	require.GreaterOrEqual(t, checked["baton"], 30, "baton command lines found")
	for _, p := range []string{"worker", "stampd", "load", "demo", "pgcluster", "bench"} {
		require.NotZero(t, checked[p], "no %s command line found in the docs", p)
	}
}

// TestDocCheckRefusesWhatTheProgramsRefuse: the checker itself, on lines a
// doc might get wrong.
func TestDocCheckRefusesWhatTheProgramsRefuse(t *testing.T) {
	doc := strings.Join([]string{
		"Run `baton status acct-1 --acount x` or `baton fail-over acct-1`.",
		"```sh",
		"bin/baton result acct-1 extra",
		"baton failover acct-1 --to stamp-b --flush-deadline soon",
		"baton plan validat examples/plans/shop.yaml",
		"stampd serve --nam stamp-a &",
		"stampd serv --name stamp-a",
		"stampd certs create-node stamp-a --hots h",
		"stampd certs init --dir certs extra",
		"load run --rate fast",
		"bin/worker --location http://x stray",
		"go run ./cmd/demo --exit=maybe",
		"baton approve|rejekt ACCOUNT --reason WHY",
		"```",
	}, "\n")
	path := filepath.Join(t.TempDir(), "bad.md")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
	tools := loadFlagTools(t)
	var errs []string
	for _, l := range extractFile(t, path) {
		for _, inv := range l.invocations() {
			if err := inv.check(tools); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	all := strings.Join(errs, "\n")
	for _, want := range []string{
		"unknown flag: --acount",
		`unknown command "fail-over"`,
		"one account was expected",
		`invalid argument "soon"`,
		`unknown command "validat"`,
		"flag provided but not defined: -nam",
		`no subcommand "serv"`,
		"flag provided but not defined: -hots",
		`unexpected argument "extra"`,
		`invalid value "fast" for flag -rate`,
		`unexpected argument "stray"`,
		`invalid boolean value "maybe"`,
		`unknown command "rejekt"`,
	} {
		require.Contains(t, all, want)
	}
	require.Len(t, errs, 13, all)

	// And what they take.
	good := strings.Join([]string{
		"Use `baton watch`, `baton plan`, `load audit`, `stampd serve | location`, `baton status ACCOUNT`.",
		"```",
		"baton failover ACCOUNT --to STAMP --flush-deadline DURATION        a diagram's annotation",
		"baton -o json result acct-1 -v",
		"baton result --account acct-1",
		"baton abort acct-1 --account acct-1 --reason \"changed my mind\"",
		"docker compose run --rm baton-cli failover demo --to stamp-b --wait",
		"STAMP_A_URL=http://127.0.0.1:7201 baton plan run examples/plans/shop.yaml --set ACCOUNT=acct-1",
		"$ baton plan simulate FILE --width 40",
		"go run ./cmd/pgcluster [--exit] [--workers 3] [--failover=false]",
		"stampd provision --location $L --account acct --partitions N \\",
		"  --primary stamp-a --secondary stamp-b",
		"load run --account acct --rate 2000 --duration 30s | tee out   # a comment",
		"load audit --certs-dir certs --cert-name load --account acct   # flags of a shared helper",
		"bin/worker --insecure --location http://127.0.0.1:7100",
		"```",
	}, "\n")
	require.NoError(t, os.WriteFile(path, []byte(good), 0o644))
	n := 0
	for _, l := range extractFile(t, path) {
		for _, inv := range l.invocations() {
			n++
			require.NoError(t, inv.check(tools), "%s: %s", l.where, l.text)
		}
	}
	require.Equal(t, 18, n)
}

// docFiles are the documents whose command lines are checked.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"../README.md", "../BENCHMARKS.md"}
	for _, pattern := range []string{"../docs/*.md", "../examples/*.yaml", "../examples/plans/*.yaml"} {
		m, err := filepath.Glob(pattern)
		require.NoError(t, err)
		files = append(files, m...)
	}
	return files
}

// docLine is one command line found in a doc.
type docLine struct {
	where  string // file:line
	text   string
	inline bool // from inline code in prose (a bare command name is a mention)
}

var (
	reFence      = regexp.MustCompile("^\\s*(```|~~~)")
	reInlineCode = regexp.MustCompile("`([^`]+)`")
	reAnnotation = regexp.MustCompile(`\s{3,}.*$`)
)

// extractFile returns the command lines of a Markdown file (fenced code
// blocks, inline code) or of a YAML file's comments.
func extractFile(t *testing.T, path string) []docLine {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	name := strings.TrimPrefix(filepath.ToSlash(path), "../")
	src := strings.Split(string(b), "\n")
	var out []docLine
	if strings.HasSuffix(path, ".yaml") {
		// Comments only: inline code, and comment lines that are commands.
		var para []string
		start := 0
		flush := func() {
			out = append(out, inlineSpans(name, start, strings.Join(para, " "))...)
			para = nil
		}
		for i, l := range src {
			c, ok := strings.CutPrefix(strings.TrimSpace(l), "#")
			if !ok {
				flush()
				continue
			}
			if len(para) == 0 {
				start = i + 1
			}
			para = append(para, c)
			// A comment indented further than prose ("#   baton plan
			// run ...") is a command line.
			if strings.HasPrefix(c, "  ") {
				out = append(out, docLine{where: fmt.Sprintf("%s:%d", name, i+1), text: strings.TrimSpace(c)})
			}
		}
		flush()
		return out
	}
	inFence := false
	var para []string
	paraStart := 0
	flushPara := func() {
		out = append(out, inlineSpans(name, paraStart, strings.Join(para, " "))...)
		para = nil
	}
	for i := 0; i < len(src); i++ {
		l := src[i]
		if reFence.MatchString(l) {
			flushPara()
			inFence = !inFence
			continue
		}
		if inFence {
			start := i
			text := strings.TrimSpace(l)
			for strings.HasSuffix(text, "\\") && i+1 < len(src) {
				i++
				text = strings.TrimSuffix(text, "\\") + " " + strings.TrimSpace(src[i])
			}
			text = reAnnotation.ReplaceAllString(text, "")
			out = append(out, docLine{where: fmt.Sprintf("%s:%d", name, start+1), text: text})
			continue
		}
		prose := strings.TrimSpace(l)
		for strings.HasPrefix(prose, ">") {
			prose = strings.TrimSpace(strings.TrimPrefix(prose, ">"))
		}
		if prose == "" {
			flushPara()
			continue
		}
		if len(para) == 0 {
			paraStart = i + 1
		}
		para = append(para, prose)
	}
	flushPara()
	return out
}

// inlineSpans returns the inline code of a paragraph (which may span
// lines) as candidate command lines.
func inlineSpans(file string, line int, para string) []docLine {
	var out []docLine
	for _, m := range reInlineCode.FindAllStringSubmatch(para, -1) {
		out = append(out, docLine{where: fmt.Sprintf("%s:%d", file, line), text: strings.TrimSpace(m[1]), inline: true})
	}
	return out
}

// cobraExamples are the Example lines of every baton command.
func cobraExamples() []docLine {
	var out []docLine
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, l := range strings.Split(c.Example, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, docLine{where: "Example of `" + c.CommandPath() + "`", text: l})
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot())
	return out
}

// invocation is one program run a doc line shows.
type invocation struct {
	prog    string   // baton, worker, stampd, load, demo, bench, pgcluster
	args    []string // after the program, placeholders not yet replaced
	mention bool     // from prose: if it is only a command's name, it names the command
}

var (
	reEnvAssign   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	rePlaceholder = regexp.MustCompile(`^[A-Z][A-Z0-9_-]*(\|[A-Z][A-Z0-9_-]*)*$`)
	reAltSpaces   = regexp.MustCompile(`\s*\|\s*`)
)

// invocations parses a doc line into the program runs it shows: none if it
// runs none of Baton's programs, several for a|b alternatives.
func (l docLine) invocations() []invocation {
	text := l.text
	if l.inline {
		// In prose "a | b" lists alternatives; a code block's | is a pipe.
		text = reAltSpaces.ReplaceAllString(text, "|")
	}
	words, err := shellWords(text, !l.inline)
	if err != nil || len(words) == 0 {
		return nil
	}
	for len(words) > 0 && (words[0] == "$" || reEnvAssign.MatchString(words[0])) {
		words = words[1:]
	}
	prog, rest := program(words)
	if prog == "" {
		return nil
	}
	var args []string
	for _, w := range rest {
		// [x] is an optional x.
		w = strings.TrimPrefix(w, "[")
		if !strings.HasSuffix(w, "[]") {
			w = strings.TrimSuffix(w, "]")
		}
		if w != "" {
			args = append(args, w)
		}
	}
	mention := l.inline // only a command's name is a mention (see check)
	// Expand a|b|c (not a placeholder) into one invocation each.
	out := []invocation{{prog: prog, mention: mention}}
	for _, a := range args {
		alts := []string{a}
		if strings.Contains(a, "|") && !isPlaceholder(a) && !strings.HasPrefix(a, "-") {
			alts = strings.Split(a, "|")
		}
		var next []invocation
		for _, inv := range out {
			for _, alt := range alts {
				next = append(
					next,
					invocation{prog: inv.prog, mention: inv.mention, args: append(slices.Clone(inv.args), alt)},
				)
			}
		}
		out = next
	}
	return out
}

// program recognizes how the docs run Baton's programs.
func program(w []string) (string, []string) {
	base := func(s string) string { return s[strings.LastIndex(s, "/")+1:] }
	switch {
	case len(w) >= 3 && w[0] == "go" && w[1] == "run":
		switch pkg := strings.TrimSuffix(w[2], "/"); pkg {
		case "./starter":
			return "baton", w[3:]
		case "./worker":
			return "worker", w[3:]
		default:
			if name, ok := strings.CutPrefix(pkg, "./cmd/"); ok {
				return name, w[3:]
			}
		}
	case len(w) >= 3 && (w[0] == "docker" && w[1] == "compose" || w[0] == "docker-compose"):
		i := 1
		if w[0] == "docker" {
			i = 2
		}
		if w[i] != "run" {
			return "", nil
		}
		for i++; i < len(w) && strings.HasPrefix(w[i], "-"); i++ {
		}
		if i < len(w) && w[i] == "baton-cli" {
			return "baton", w[i+1:]
		}
	case len(w) >= 1 && slices.Contains([]string{"baton", "worker", "stampd", "load"}, base(w[0])) &&
		(w[0] == base(w[0]) || strings.HasPrefix(w[0], "bin/") || strings.HasPrefix(w[0], "./bin/")):
		return base(w[0]), w[1:]
	}
	return "", nil
}

func isPlaceholder(s string) bool {
	return rePlaceholder.MatchString(s) || s == "..." || strings.HasPrefix(s, "$")
}

// shellWords splits a command line as a shell would (quotes, backslashes),
// stopping at a comment and, in a code block, at |, &&, ;, & or a
// redirection.
func shellWords(s string, block bool) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		in    bool // inside a word
		quote rune
	)
	end := func() {
		if in {
			words = append(words, cur.String())
			cur.Reset()
			in = false
		}
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else if r == '\\' && quote == '"' && i+1 < len(rs) {
				i++
				cur.WriteRune(rs[i])
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			in = true
		case r == ' ' || r == '\t':
			end()
		case r == '#' && !in:
			end()
			return words, nil
		case block && r == '|' && in && i+1 < len(rs) && rs[i+1] != ' ':
			// a|b inside a word: alternatives, not a pipe
			cur.WriteRune(r)
		case block && strings.ContainsRune("|&;<>", r):
			end()
			return words, nil
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, errors.New("unterminated quote")
	}
	end()
	return words, nil
}

// check parses the invocation with its program's parser.
func (inv invocation) check(tools map[string]*flagTool) error {
	if inv.prog == "baton" {
		return checkBaton(inv.args, inv.mention)
	}
	tool, ok := tools[inv.prog]
	if !ok {
		return fmt.Errorf("program %s: its flags are not known to this test", inv.prog)
	}
	return tool.check(inv.args, inv.mention)
}

// checkBaton runs args through the real command tree up to, not including,
// the command's RunE.
func checkBaton(args []string, mention bool) error {
	root := newRoot()
	root.InitDefaultHelpCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if mention && len(rest) == 0 {
		return nil
	}
	cmd.InitDefaultHelpFlag()
	if err := cmd.ParseFlags(sampleBatonArgs(cmd, rest)); err != nil {
		return err
	}
	if help, _ := cmd.Flags().GetBool("help"); help {
		return nil
	}
	pos := cmd.Flags().Args()
	if !cmd.Runnable() {
		if len(pos) > 0 {
			return fmt.Errorf("unknown command %q for %q", pos[0], cmd.CommandPath())
		}
		return fmt.Errorf("%q is not a command to run by itself", cmd.CommandPath())
	}
	if err := cmd.ValidateArgs(pos); err != nil {
		return err
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return err
	}
	return cmd.ValidateFlagGroups()
}

// sampleBatonArgs replaces placeholders by sample values of the type the
// flag before them takes.
func sampleBatonArgs(cmd *cobra.Command, args []string) []string {
	out := slices.Clone(args)
	fs := cmd.Flags()
	fs.AddFlagSet(cmd.InheritedFlags())
	for i, a := range out {
		if !isPlaceholder(a) {
			if name, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "="); ok && strings.HasPrefix(a, "-") &&
				isPlaceholder(val) {
				if f := fs.Lookup(name); f != nil {
					out[i] = "--" + name + "=" + sampleOf(f.Value.Type())
				}
			}
			continue
		}
		typ := "string"
		if i > 0 && strings.HasPrefix(out[i-1], "-") && !strings.Contains(out[i-1], "=") {
			name := strings.TrimLeft(out[i-1], "-")
			f := fs.Lookup(name)
			if f == nil && len(name) == 1 {
				f = fs.ShorthandLookup(name)
			}
			if f != nil {
				typ = f.Value.Type()
			}
		}
		out[i] = sampleOf(typ)
	}
	return out
}

func sampleOf(typ string) string {
	switch typ {
	case "duration":
		return "90s"
	case "int", "int64", "uint64", "uint", "float64", "int32":
		return "1"
	case "bool":
		return "true"
	}
	return "sample"
}

// flagTool is one of Baton's other programs, its flag sets read from its
// source: one per subcommand (stampd serve, load run, ...) or one for the
// whole program ("").
type flagTool struct {
	name string
	sets map[string][]flagDef
	// named: the subcommands whose synopsis starts with a NAME argument
	// (stampd certs create-node NAME ...).
	named map[string]bool
}

type flagDef struct{ name, kind string }

// loadFlagTools reads the flag sets of the programs besides baton.
func loadFlagTools(t *testing.T) map[string]*flagTool {
	t.Helper()
	tools := map[string]*flagTool{}
	// The worker and every command under cmd/: a new command is checked as
	// soon as it exists.
	dirs := map[string]string{"worker": "../worker"}
	cmds, err := filepath.Glob("../cmd/*")
	require.NoError(t, err)
	for _, d := range cmds {
		dirs[filepath.Base(d)] = d
	}
	// The packages whose helpers declare flags shared by several programs
	// (the client certificate flags, --location).
	lib := map[string][]flagDef{}
	for _, dir := range []string{"../internal/auth", "../location"} {
		_, err := readFlagTool("", dir, lib)
		require.NoError(t, err)
	}
	require.NotEmpty(t, lib["DialFlags"], "the shared flag helpers are no longer found")
	for name, dir := range dirs {
		tool, err := readFlagTool(name, dir, lib)
		require.NoError(t, err)
		n := 0
		for _, defs := range tool.sets {
			n += len(defs)
		}
		require.NotZero(t, n, "no flags found in %s: the test no longer reads how %s defines its flags", dir, name)
		tools[name] = tool
	}
	return tools
}

// readFlagTool finds, in each function of the package, the flag set it
// makes (fs := flag.NewFlagSet("prog", ...), fs := cli.NewFlagSet("prog",
// "sub", ...) or fs := newFlags("sub", ...))
// and the flags defined on it (fs.String("name", ...), fs.DurationVar(&v,
// "name", ...), ...). A helper taking a flag set lends its flags to every
// set passed to it: the package's own, or lib's (helpers of other packages
// by function or method name), to which it adds its own helpers.
func readFlagTool(name, dir string, lib map[string][]flagDef) (*flagTool, error) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(
		fset,
		dir,
		func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") },
		0,
	)
	if err != nil {
		return nil, err
	}
	tool := &flagTool{name: name, sets: map[string][]flagDef{}, named: map[string]bool{}}
	str := func(e ast.Expr) (string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(lit.Value)
		return s, err == nil
	}
	// A helper that defines flags on a *flag.FlagSet parameter (e.g.
	// securityFlags(fs)) lends them to every flag set passed to it.
	type helperCall struct{ sub, helper string }
	var calls []helperCall
	for _, pkg := range pkgs {
		for _, file := range pkg.Files {
			for _, decl := range file.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Body == nil {
					continue
				}
				sets := map[string]string{} // variable -> subcommand
				if p := flagSetParam(fn); p != "" {
					sets[p] = helperSet + fn.Name.Name
				}
				ast.Inspect(fn.Body, func(n ast.Node) bool {
					if c, ok := n.(*ast.CallExpr); ok && len(c.Args) > 0 {
						if arg, ok := c.Args[0].(*ast.Ident); ok {
							if s, isSet := sets[arg.Name]; isSet {
								switch fun := c.Fun.(type) {
								case *ast.Ident: // helper(fs, ...)
									calls = append(calls, helperCall{s, fun.Name})
								case *ast.SelectorExpr: // x.Helper(fs, ...)
									calls = append(calls, helperCall{s, fun.Sel.Name})
								}
							}
						}
					}
					if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
						id, ok1 := as.Lhs[0].(*ast.Ident)
						call, ok2 := as.Rhs[0].(*ast.CallExpr)
						if ok1 && ok2 && len(call.Args) > 0 {
							switch fun := call.Fun.(type) {
							case *ast.Ident: // newFlags("serve", ...)
								if fun.Name == "newFlags" {
									if s, ok := str(call.Args[0]); ok {
										sets[id.Name] = s
										tool.sets[s] = tool.sets[s]
									}
								}
							case *ast.SelectorExpr: // flag.NewFlagSet("worker", ...), cli.NewFlagSet("stampd", "serve", ...)
								x, _ := fun.X.(*ast.Ident)
								if x != nil && x.Name == "cli" && fun.Sel.Name == "NewFlagSet" && len(call.Args) > 2 {
									if s, ok := str(call.Args[1]); ok {
										s = tool.subcommand(call, s, str)
										sets[id.Name] = s
										tool.sets[s] = tool.sets[s]
									}
								}
								// A literal name only: a NewFlagSet("stampd "+name)
								// is not a flag set of the program as a whole.
								if x != nil && x.Name == "flag" && fun.Sel.Name == "NewFlagSet" {
									if _, ok := str(call.Args[0]); ok {
										sets[id.Name] = ""
										tool.sets[""] = tool.sets[""]
									}
								}
							}
						}
					}
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					sel, ok := call.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					x, ok := sel.X.(*ast.Ident)
					if !ok {
						return true
					}
					sub, ok := sets[x.Name]
					if !ok {
						return true
					}
					method := sel.Sel.Name
					arg := 0
					kind := strings.ToLower(strings.TrimSuffix(method, "Var"))
					switch method {
					case "String", "Bool", "Int", "Int64", "Uint", "Uint64", "Float64", "Duration":
					case "StringVar",
						"BoolVar",
						"IntVar",
						"Int64Var",
						"UintVar",
						"Uint64Var",
						"Float64Var",
						"DurationVar",
						"Var",
						"TextVar":
						arg = 1
						if method == "Var" || method == "TextVar" {
							kind = "string"
						}
					case "Func":
						kind = "string"
					case "BoolFunc":
						kind = "bool"
					default:
						return true
					}
					if len(call.Args) > arg {
						if s, ok := str(call.Args[arg]); ok {
							tool.sets[sub] = append(tool.sets[sub], flagDef{name: s, kind: kind})
						}
					}
					return true
				})
			}
		}
	}
	// Helpers first (one may call another), then the program's sets.
	lend := func(c helperCall) {
		from, ok := tool.sets[helperSet+c.helper]
		if !ok {
			from = lib[c.helper]
		}
		tool.sets[c.sub] = append(tool.sets[c.sub], from...)
	}
	for _, helpers := range []bool{true, false} {
		for _, c := range calls {
			if strings.HasPrefix(c.sub, helperSet) == helpers {
				lend(c)
			}
		}
	}
	for sub, defs := range tool.sets {
		if strings.HasPrefix(sub, helperSet) {
			if lib != nil && name == "" {
				lib[strings.TrimPrefix(sub, helperSet)] = defs
			}
			delete(tool.sets, sub)
		}
	}
	return tool, nil
}

// subcommand names the flag set cli.NewFlagSet(prog, sub, synopsis) makes:
// sub, or "group sub" for a program "stampd group" (the group is a
// subcommand too, for mentions); a synopsis "sub NAME ..." marks it named.
func (tool *flagTool) subcommand(call *ast.CallExpr, sub string, str func(ast.Expr) (string, bool)) string {
	if prog, ok := str(call.Args[0]); ok {
		if _, group, nested := strings.Cut(prog, " "); nested {
			tool.sets[group] = tool.sets[group]
			sub = group + " " + sub
		}
	}
	if syn, ok := str(call.Args[2]); ok {
		if w := strings.Fields(syn); len(w) > 1 && w[1] == strings.ToUpper(w[1]) && !strings.HasPrefix(w[1], "-") &&
			!strings.HasPrefix(w[1], "[") {
			tool.named[sub] = true
		}
	}
	return sub
}

// helperSet prefixes the flags a helper defines on its *flag.FlagSet
// parameter, until they are lent to the sets passed to it.
const helperSet = "\x00helper:"

// flagSetParam is the name of fn's *flag.FlagSet parameter (or of a
// flagSet, an interface of flag sets), if it has one.
func flagSetParam(fn *ast.FuncDecl) string {
	for _, f := range fn.Type.Params.List {
		if id, ok := f.Type.(*ast.Ident); ok && id.Name == "flagSet" && len(f.Names) == 1 {
			return f.Names[0].Name
		}
		star, ok := f.Type.(*ast.StarExpr)
		if !ok {
			continue
		}
		sel, ok := star.X.(*ast.SelectorExpr)
		if !ok {
			continue
		}
		if x, _ := sel.X.(*ast.Ident); x != nil && x.Name == "flag" && sel.Sel.Name == "FlagSet" && len(f.Names) == 1 {
			return f.Names[0].Name
		}
	}
	return ""
}

// check parses args as the program would: its subcommand (if it has
// several flag sets), then Go's flag package on that subcommand's flags;
// stray arguments are refused.
func (tool *flagTool) check(args []string, mention bool) error {
	sub := ""
	if _, single := tool.sets[""]; !single {
		if len(args) == 0 {
			if mention {
				return nil
			}
			return fmt.Errorf("%s: no subcommand", tool.name)
		}
		sub, args = args[0], args[1:]
		if _, ok := tool.sets[sub]; !ok {
			return fmt.Errorf("%s: no subcommand %q (it has %v)", tool.name, sub, slices.Sorted(maps.Keys(tool.sets)))
		}
		if len(args) > 0 {
			if _, ok := tool.sets[sub+" "+args[0]]; ok {
				sub, args = sub+" "+args[0], args[1:]
			}
		}
		if tool.named[sub] && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			args = args[1:]
		}
	}
	if mention && len(args) == 0 {
		return nil
	}
	fs := flag.NewFlagSet(strings.TrimSpace(tool.name+" "+sub), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	kinds := map[string]string{}
	for _, d := range tool.sets[sub] {
		kinds[d.name] = d.kind
		switch d.kind {
		case "bool":
			fs.Bool(d.name, false, "")
		case "int", "int64":
			fs.Int64(d.name, 0, "")
		case "uint", "uint64":
			fs.Uint64(d.name, 0, "")
		case "float64":
			fs.Float64(d.name, 0, "")
		case "duration":
			fs.Duration(d.name, time.Second, "")
		default:
			fs.String(d.name, "", "")
		}
	}
	args = slices.Clone(args)
	for i, a := range args {
		if !isPlaceholder(a) {
			continue
		}
		typ := "string"
		if i > 0 && strings.HasPrefix(args[i-1], "-") {
			typ = kinds[strings.TrimLeft(args[i-1], "-")]
		}
		args[i] = sampleOf(typ)
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}
