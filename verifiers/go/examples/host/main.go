// Command host is an example Go host on wazero: it installs a plugin through the Go verifier,
// re-verifies it at load time, and runs one export with the plugin's declared memory limit (from
// its maintainer-signed manifest) and only the host functions its granted permissions allow.
//
//	go run ./examples/host -url http://127.0.0.1:8765/ -root index/root/1.root.json \
//	    -state /tmp/state -dir /tmp/plugins -spec visit_counter@^1.0 -allow keys \
//	    -call next_visit -input visits:home -kv visits:home=41
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	verifier "github.com/registry-tool/registry-tool/verifiers/go"
)

// Config is one run of the example host.
type Config struct {
	URL, RootFile, State, Dir string
	Spec, HostVersion         string
	Allow                     []string
	Call, Input               string
	KV                        map[string]string // the host's key-value store (the "keys" permission)
	Now                       time.Time
	DefaultMemory             int64         // when the manifest declares no memory limit
	DefaultWallTime           time.Duration // when the manifest declares no wall_time
}

const wasmPage = 65536

// hostModules are the host functions this host implements, by the permission that grants them
// (the registry's vocabulary: registry.toml [permissions.keys] imports ferrite:keys.*).
func hostModules(kv map[string]string) map[string]func(wazero.Runtime) wazero.HostModuleBuilder {
	return map[string]func(wazero.Runtime) wazero.HostModuleBuilder{
		"keys": func(r wazero.Runtime) wazero.HostModuleBuilder {
			return r.NewHostModuleBuilder("ferrite:keys").NewFunctionBuilder().
				WithFunc(func(ctx context.Context, m api.Module, keyPtr, keyLen, outPtr, outCap int32) int32 {
					key, ok := m.Memory().Read(uint32(keyPtr), uint32(keyLen))
					if !ok {
						panic("ferrite:keys.get: key out of bounds")
					}
					v, found := kv[string(key)]
					if !found {
						return -1
					}
					n := min(len(v), int(outCap))
					if !m.Memory().Write(uint32(outPtr), []byte(v)[:n]) {
						panic("ferrite:keys.get: output out of bounds")
					}
					return int32(len(v))
				}).Export("get")
		},
	}
}

// permissionOfModule maps an import module to the permission that grants it.
var permissionOfModule = map[string]string{"ferrite:keys": "keys", "ferrite:net": "network"}

// Run installs (or reuses) the plugin, verifies it at load time and calls the export.
func Run(ctx context.Context, cfg Config) (string, error) {
	if _, err := verifier.LoadState(cfg.State); err != nil {
		// First use: pin the root shipped with the host.
		raw, err := os.ReadFile(cfg.RootFile)
		if err != nil {
			return "", err
		}
		root, err := verifier.ParseRoot(raw, cfg.RootFile)
		if err != nil {
			return "", err
		}
		var names []string
		for _, k := range root.Roles["root"].Keys {
			names = append(names, fmt.Sprintf("root/%d.root.json.%s.minisig", root.Version, k.KeyID()))
		}
		sigs, err := verifier.FetchFiles(ctx, cfg.URL, names, verifier.MaxSignature, verifier.Options{Deadline: 30 * time.Second})
		if err != nil {
			return "", err
		}
		if _, err := verifier.PinRoot(cfg.State, cfg.URL, raw, sigs); err != nil {
			return "", err
		}
	}
	session, err := verifier.Refresh(ctx, cfg.State, cfg.URL, verifier.Options{Now: cfg.Now, Deadline: time.Minute})
	if err != nil {
		return "", err
	}
	installed, err := session.Install(cfg.Spec, cfg.Dir, verifier.InstallOptions{HostVersion: cfg.HostVersion, Allow: cfg.Allow})
	if err != nil {
		return "", err
	}
	name := installed[0].Name

	// Load time (every start of the host, offline): the bytes are re-verified, then run.
	plugin, err := verifier.LoadInstalled(cfg.Dir, cfg.State, name, cfg.Now)
	if err != nil {
		return "", err
	}
	if plugin.Manifest.ABI != "core" {
		return "", fmt.Errorf("this example host runs core-ABI plugins; %s is %s", name, plugin.Manifest.ABI)
	}
	memory := cfg.DefaultMemory
	if m, ok := plugin.Manifest.Limits["memory"]; ok {
		memory = m
	}
	wall := cfg.DefaultWallTime
	if ms, ok := plugin.Manifest.Limits["wall_time_ms"]; ok {
		wall = time.Duration(ms) * time.Millisecond
	}
	// wazero has no fuel metering: the wall-time deadline (CloseOnContextDone) bounds CPU instead.
	runCtx, cancel := context.WithTimeout(ctx, wall)
	defer cancel()
	rt := wazero.NewRuntimeWithConfig(runCtx, wazero.NewRuntimeConfig().
		WithMemoryLimitPages(uint32(memory/wasmPage)).
		WithCloseOnContextDone(true))
	defer rt.Close(ctx)

	compiled, err := rt.CompileModule(runCtx, plugin.Wasm)
	if err != nil {
		return "", fmt.Errorf("%s does not fit its limits (memory %d bytes): %w", name, memory, err)
	}
	// Only the host functions of permissions the plugin declares (signed) and the host granted
	// (recorded in the lockfile) are instantiated; any other import fails to link.
	granted := map[string]bool{}
	for _, p := range plugin.Entry.Permissions {
		granted[p] = true
	}
	modules := hostModules(cfg.KV)
	for _, f := range compiled.ImportedFunctions() {
		mod, fn, _ := f.Import()
		perm, known := permissionOfModule[mod]
		if !known || !granted[perm] || modules[perm] == nil {
			return "", fmt.Errorf("%s imports %s.%s, which no granted permission of this host provides", name, mod, fn)
		}
	}
	for perm := range granted {
		if build := modules[perm]; build != nil {
			if _, err := build(rt).Instantiate(runCtx); err != nil {
				return "", err
			}
		}
	}
	mod, err := rt.InstantiateModule(runCtx, compiled, wazero.NewModuleConfig().WithName(name))
	if err != nil {
		return "", err
	}
	fn := mod.ExportedFunction(cfg.Call)
	if fn == nil || !contains(plugin.Manifest.Exports, cfg.Call) {
		return "", fmt.Errorf("%s does not export %s (declared: %s)", name, cfg.Call, strings.Join(plugin.Manifest.Exports, ", "))
	}
	var args []uint64
	if len(fn.Definition().ParamTypes()) == 2 {
		// Byte input, the core ABI convention of docs/manifest.md: alloc(len), write, f(ptr, len).
		alloc := mod.ExportedFunction("alloc")
		if alloc == nil {
			return "", fmt.Errorf("%s takes bytes but exports no alloc", name)
		}
		res, err := alloc.Call(runCtx, uint64(len(cfg.Input)))
		if err != nil {
			return "", err
		}
		ptr := uint32(res[0])
		if !mod.Memory().Write(ptr, []byte(cfg.Input)) {
			return "", fmt.Errorf("alloc returned an out-of-bounds pointer")
		}
		args = []uint64{uint64(ptr), uint64(len(cfg.Input))}
	}
	results, err := fn.Call(runCtx, args...)
	if err != nil {
		return "", fmt.Errorf("%s.%s trapped: %w", name, cfg.Call, err)
	}
	out := make([]string, len(results))
	types := fn.Definition().ResultTypes()
	for i, r := range results {
		switch types[i] {
		case api.ValueTypeI32:
			out[i] = fmt.Sprint(int32(r))
		case api.ValueTypeI64:
			out[i] = fmt.Sprint(int64(r))
		default:
			out[i] = fmt.Sprint(r)
		}
	}
	return fmt.Sprintf("%s %s: %s(%q) = %s", name, plugin.Entry.Version, cfg.Call, cfg.Input, strings.Join(out, ", ")), nil
}

func contains(list []string, x string) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

func main() {
	var cfg Config
	var allow, kv, now string
	flag.StringVar(&cfg.URL, "url", "", "registry URL")
	flag.StringVar(&cfg.RootFile, "root", "", "root file to pin on first use")
	// The user's own cache folder, never a shared one: in /tmp another user could plant a trust
	// state pinning their own root before the first run.
	base, err := os.UserCacheDir()
	if err != nil {
		base = "."
	}
	flag.StringVar(&cfg.State, "state", filepath.Join(base, "registry-host", "state"), "trust state directory")
	flag.StringVar(&cfg.Dir, "dir", filepath.Join(base, "registry-host", "plugins"), "plugin directory")
	flag.StringVar(&cfg.Spec, "spec", "", "plugin requirement NAME[@RANGE]")
	flag.StringVar(&cfg.HostVersion, "host-version", "0.3.1", "this host's version")
	flag.StringVar(&allow, "allow", "", "permissions the host grants, comma-separated")
	flag.StringVar(&cfg.Call, "call", "", "export to call")
	flag.StringVar(&cfg.Input, "input", "", "byte input for the export")
	flag.StringVar(&kv, "kv", "", "key=value pairs of the host's store, comma-separated")
	flag.StringVar(&now, "now", "", "verification time (default: the clock)")
	flag.Parse()
	cfg.Now = time.Now().UTC()
	if now != "" {
		t, ok := verifier.ParseTime(now)
		if !ok {
			fmt.Fprintln(os.Stderr, "host: -now must be YYYY-MM-DDTHH:MM:SSZ")
			os.Exit(2)
		}
		cfg.Now = t
	}
	if allow != "" {
		cfg.Allow = strings.Split(allow, ",")
	}
	cfg.KV = map[string]string{}
	for _, pair := range strings.Split(kv, ",") {
		if k, v, ok := strings.Cut(pair, "="); ok {
			cfg.KV[k] = v
		}
	}
	cfg.DefaultMemory, cfg.DefaultWallTime = 16<<20, 2*time.Second
	if cfg.URL == "" || cfg.Spec == "" || cfg.Call == "" {
		fmt.Fprintln(os.Stderr, "usage: host -url URL -root FILE -spec NAME[@RANGE] -call EXPORT [-input BYTES] [-allow a,b] [-kv k=v]")
		os.Exit(2)
	}
	out, err := Run(context.Background(), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		if e, ok := err.(*verifier.Error); ok {
			os.Exit(e.ExitCode())
		}
		os.Exit(1)
	}
	fmt.Println(out)
}
