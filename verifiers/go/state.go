package verifier

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The verifier's trust state directory: state.json holds the trusted root (its exact bytes) and
// the highest registry.json version seen. A session writes it once its root chain and registry.json
// verified (Session.Commit, which Install calls first), never lowering what another process stored.
const stateFile = "state.json"

// pinnedFile holds the sha256 of the root last pinned (decision 1: pinning it again keeps the state).
const pinnedFile = "pinned-root.sha256"

type stateData struct {
	StateVersion   int    `json:"state_version"`
	URL            string `json:"url"`
	Root           string `json:"root"` // the trusted root's exact bytes (UTF-8 JSON text)
	HighestVersion int64  `json:"highest_version"`
}

// State is a loaded trust state.
type State struct {
	Dir            string
	URL            string
	Root           *Root
	HighestVersion int64
}

func notPinned(dir string) *Error {
	return &Error{Class: ClassNotPinned, Where: dir, What: "no root is pinned in this state directory",
		Fix: "pin the registry's root first (registry-verifier pin --root FILE, or verifier.PinRoot)"}
}

// LoadState reads the trust state; a missing state is not-pinned.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if os.IsNotExist(err) {
		return nil, notPinned(dir)
	}
	if err != nil {
		return nil, &Error{Class: ClassNotPinned, Where: dir, What: "cannot read the trust state: " + err.Error(), Fix: "check the state directory"}
	}
	var sd stateData
	if err := json.Unmarshal(b, &sd); err != nil || sd.StateVersion != 1 {
		return nil, &Error{Class: ClassNotPinned, Where: dir, What: "the trust state is unreadable", Fix: "pin the root again"}
	}
	root, err := parseRoot([]byte(sd.Root), filepath.Join(dir, stateFile))
	if err != nil {
		return nil, &Error{Class: ClassNotPinned, Where: dir, What: "the trusted root in the state is invalid: " + AsError(err).What, Fix: "pin the root again"}
	}
	return &State{Dir: dir, URL: sd.URL, Root: root, HighestVersion: sd.HighestVersion}, nil
}

// Save writes the state atomically.
func (s *State) Save() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return &Error{Class: ClassNetwork, Where: s.Dir, What: "cannot create the state directory: " + err.Error(), Fix: "check permissions"}
	}
	b, _ := json.MarshalIndent(stateData{StateVersion: 1, URL: s.URL, Root: string(s.Root.Raw), HighestVersion: s.HighestVersion}, "", "  ")
	if err := writeFileAtomic(s.Dir, stateFile, append(b, '\n')); err != nil {
		return &Error{Class: ClassNetwork, Where: s.Dir, What: "cannot write the trust state: " + err.Error(), Fix: "check permissions and free space"}
	}
	return nil
}

// saveMerged writes the state unless what is stored is further along, as the Python client's
// StateStore.save: under a lock on the state directory, a stored root of a higher version is
// kept (another process committed a newer one: a session must never lower it), and for the same
// root the higher of the two highest registry versions is written. Sessions commit through it;
// PinRoot writes the state itself (decision 1).
func (s *State) saveMerged() error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return &Error{Class: ClassNetwork, Where: s.Dir, What: "cannot create the state directory: " + err.Error(), Fix: "check permissions"}
	}
	fd, err := unix.Open(filepath.Join(s.Dir, stateFile+".lck"), unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &Error{Class: ClassNetwork, Where: s.Dir, What: "cannot open the trust state's lock: " + err.Error(), Fix: "check permissions"}
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return &Error{Class: ClassNetwork, Where: s.Dir, What: "cannot lock the trust state: " + err.Error(), Fix: "check the state directory"}
	}
	defer unix.Flock(fd, unix.LOCK_UN) //nolint:errcheck
	if current, err := LoadState(s.Dir); err == nil && current.URL == s.URL {
		if current.Root.Version > s.Root.Version {
			return nil
		}
		if current.Root.Version == s.Root.Version && current.HighestVersion > s.HighestVersion {
			s.HighestVersion = current.HighestVersion
		}
	}
	return s.Save()
}

// PinRoot pins a root on first use: it must be signed by a threshold of its own root role (any
// failure is root-chain). Expiry is not checked here: an old pinned root may lead to a current
// one, and Refresh checks the final root. Pinning the very root pinned before again keeps the
// state (a newer root, the highest version seen: conformance decision 1); any other root replaces
// the state (highest version 0).
// rootSigs are its keyed signature files. The URL is checked as Refresh and FetchFiles check it
// (http or https, no user:password@, which state.json and every lockfile entry would hold in clear).
func PinRoot(stateDir, registryURL string, rootBytes []byte, rootSigs [][]byte) (*State, error) {
	registryURL = canonicalRegistryURL(registryURL)
	if _, err := normaliseURL(registryURL); err != nil {
		return nil, err
	}
	root, err := parseRoot(rootBytes, "")
	if err == nil {
		err = VerifyThreshold(root.role("root"), rootBytes, rootSigs, fmt.Sprintf("root version %d", root.Version))
	}
	if err != nil {
		return nil, withClass(err, ClassRootChain).(*Error)
	}
	s := &State{Dir: stateDir, URL: registryURL, Root: root}
	// The very root pinned before, pinned again (a host pinning its bundled root at every start):
	// what the sessions learned stays, a newer root and the rollback floor (conformance decision
	// 1). Any other root (a recovery root after a compromise) replaces the state.
	sum := sha256Hex(rootBytes)
	if current, err := LoadState(stateDir); err == nil && current.URL == registryURL {
		if prev, err := os.ReadFile(filepath.Join(stateDir, pinnedFile)); err == nil && strings.TrimSpace(string(prev)) == sum {
			return current, nil
		}
	}
	if err := s.Save(); err != nil {
		return nil, err
	}
	if err := writeFileAtomic(stateDir, pinnedFile, []byte(sum+"\n")); err != nil {
		return nil, &Error{Class: ClassNetwork, Where: stateDir, What: "cannot write the pinned root's digest: " + err.Error(), Fix: "check permissions and free space"}
	}
	return s, nil
}

// rootSignatureNames are the keyed signature files of a root version that keys of roles may have made.
func rootSignatureNames(version int64, roles ...*Root) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range roles {
		if r == nil {
			continue
		}
		for _, k := range r.Roles["root"].Keys {
			name := fmt.Sprintf("root/%d.root.json.%s.minisig", version, k.KeyID())
			if !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}

func writeFileAtomic(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".part-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
