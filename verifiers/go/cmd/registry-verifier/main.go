// Command registry-verifier is the Go verifier's conformance runner binary (protocol of
// conformance/README.md): one operation per process, one JSON object on stdout, exit code 0 (ok),
// 1 (the checked thing is bad) or 2 (usage or environment); `capabilities` declares batch mode and
// `batch` answers one request per stdin line.
//
//	registry-verifier pin     --state S --url URL --root FILE            --now T
//	registry-verifier refresh --state S --url URL                         --now T [--deadline-ms N]
//	registry-verifier install --state S --url URL --dir D --spec SPEC [--host-version V] [--allow a,b] --now T [--deadline-ms N]
//	registry-verifier verify  --state S --dir D                           --now T
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	verifier "github.com/registry-tool/registry-tool/verifiers/go"
)

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func main() {
	args := os.Args[1:]
	if len(args) == 1 && args[0] == "capabilities" {
		emit(os.Stdout, map[string]any{"ok": true, "batch": true})
		return
	}
	if len(args) == 1 && args[0] == "batch" {
		os.Exit(batch(os.Stdin, os.Stdout))
	}
	out, code := answer(args)
	emit(os.Stdout, out)
	os.Exit(code)
}

// answer runs one operation and returns its JSON answer and exit code.
func answer(args []string) (map[string]any, int) {
	out, err := run(args)
	if err != nil {
		var u usageError
		if errors.As(err, &u) {
			return map[string]any{"ok": false, "error": "usage", "message": u.msg + "; fix: see registry-verifier --help"}, 2
		}
		e := verifier.AsError(err)
		return map[string]any{"ok": false, "error": string(e.Class), "message": e.Error()}, e.ExitCode()
	}
	out["ok"] = true
	return out, 0
}

// batch is the protocol's batch mode: one request {"args": [...]} per input line, one answer per
// output line (the operation's answer plus "exit"). Nothing is kept between requests: each opens
// its trust state and plugin directory afresh, exactly as one process per operation would.
func batch(in io.Reader, w io.Writer) int {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var req struct {
			Args []string `json:"args"`
		}
		var out map[string]any
		code := 2
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			out = map[string]any{"ok": false, "error": "usage", "message": "bad batch request: " + err.Error()}
		} else {
			out, code = answer(req.Args)
		}
		out["exit"] = code
		emit(w, out)
	}
	return 0
}

func emit(w io.Writer, v map[string]any) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

const usage = "usage: registry-verifier pin|refresh|install|verify --state S [--url URL] [--root FILE] [--dir D] [--spec SPEC] [--host-version V] [--allow a,b] --now T [--deadline-ms N] [--format json]"

func run(args []string) (map[string]any, error) {
	if len(args) == 0 {
		return nil, usageError{usage}
	}
	op := args[0]
	fs := flag.NewFlagSet(op, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	state := fs.String("state", "", "trust state directory")
	url := fs.String("url", "", "registry base URL")
	rootFile := fs.String("root", "", "root file to pin")
	dir := fs.String("dir", "", "plugin directory")
	spec := fs.String("spec", "", "requirement NAME or NAME@RANGE")
	hostVersion := fs.String("host-version", "", "host version")
	allow := fs.String("allow", "", "granted permissions, comma-separated")
	nowText := fs.String("now", "", "verification time YYYY-MM-DDTHH:MM:SSZ (default: the clock)")
	deadlineMS := fs.Int64("deadline-ms", 10000, "deadline for all transfers of the operation")
	format := fs.String("format", "json", "output format (json)")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usageError{"unexpected argument " + fs.Arg(0)}
	}
	if *format != "json" {
		return nil, usageError{"only --format json is supported"}
	}
	now := time.Now().UTC()
	if *nowText != "" {
		t, ok := verifier.ParseTime(*nowText)
		if !ok {
			return nil, usageError{fmt.Sprintf("--now %q is not YYYY-MM-DDTHH:MM:SSZ", *nowText)}
		}
		now = t
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	need := func(names ...string) error {
		for _, n := range names {
			// --spec "" is given: an empty requirement is bad-requirement (the requirement
			// grammar refuses it), as the other verifiers answer, not a usage error.
			if fs.Lookup(n).Value.String() == "" && !(n == "spec" && given[n]) {
				return usageError{fmt.Sprintf("%s needs --%s", op, n)}
			}
		}
		return nil
	}
	opt := verifier.Options{Now: now, Deadline: time.Duration(*deadlineMS) * time.Millisecond}
	ctx := context.Background()
	switch op {
	case "pin":
		if err := need("state", "url", "root"); err != nil {
			return nil, err
		}
		raw, err := os.ReadFile(*rootFile)
		if err != nil {
			return nil, usageError{fmt.Sprintf("cannot read --root: %v", err)}
		}
		sigs, err := rootSignatures(ctx, raw, *rootFile, *url, opt)
		if err != nil {
			return nil, err
		}
		st, err := verifier.PinRoot(*state, *url, raw, sigs)
		if err != nil {
			return nil, err
		}
		return map[string]any{"root_version": st.Root.Version}, nil
	case "refresh":
		if err := need("state", "url"); err != nil {
			return nil, err
		}
		s, err := verifier.Refresh(ctx, *state, *url, opt)
		if err != nil {
			return nil, err
		}
		if err := s.Commit(); err != nil {
			return nil, err
		}
		return map[string]any{"registry_version": s.Top.Version, "root_version": s.Root.Version}, nil
	case "install":
		if err := need("state", "url", "dir", "spec"); err != nil {
			return nil, err
		}
		s, err := verifier.Refresh(ctx, *state, *url, opt)
		if err != nil {
			return nil, err
		}
		var granted []string
		if *allow != "" {
			granted = strings.Split(*allow, ",")
		}
		inst, err := s.Install(*spec, *dir, verifier.InstallOptions{HostVersion: *hostVersion, Allow: granted})
		if err != nil {
			return nil, err
		}
		first := inst[0]
		resolved := map[string]any{}
		for _, i := range inst {
			resolved[i.Name] = map[string]any{"version": i.Version, "wasm_sha256": i.WasmSHA256, "manifest_sha256": i.ManifestSHA256}
		}
		return map[string]any{"registry_version": s.Top.Version, "root_version": s.Root.Version, "name": first.Name, "version": first.Version,
			"wasm_sha256": first.WasmSHA256, "manifest_sha256": first.ManifestSHA256, "resolved": resolved}, nil
	case "verify":
		if err := need("dir"); err != nil {
			return nil, err
		}
		rep, err := verifier.VerifyInstalled(*dir, *state, now)
		if err != nil {
			return nil, err
		}
		plugins := rep.Plugins
		if plugins == nil {
			plugins = []string{}
		}
		return map[string]any{"plugins": plugins}, nil
	}
	return nil, usageError{fmt.Sprintf("unknown operation %q; %s", op, usage)}
}

// rootSignatures fetches root/<N>.root.json.<KEYID>.minisig from the registry for each key of
// the root's own root role (404: no signature).
func rootSignatures(ctx context.Context, raw []byte, file, url string, opt verifier.Options) ([][]byte, error) {
	root, err := verifier.ParseRoot(raw, file)
	if err != nil {
		e := *verifier.AsError(err)
		e.Class = verifier.ClassRootChain
		return nil, &e
	}
	var names []string
	for _, k := range root.Roles["root"].Keys {
		names = append(names, fmt.Sprintf("root/%d.root.json.%s.minisig", root.Version, k.KeyID()))
	}
	return verifier.FetchFiles(ctx, url, names, verifier.MaxSignature, opt)
}
