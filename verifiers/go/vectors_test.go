package verifier

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The fixed vectors of docs/trust.md section 9: every case must get the verdict the Python
// reference gives.
const vectorsDir = "../../tests/trust/vectors"

type vectorCase struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	PublicKey  string   `json:"public_key"`
	Data       string   `json:"data"`
	Signature  string   `json:"signature"`
	Root       string   `json:"root"`
	Signatures []string `json:"signatures"`
	Trusted    string   `json:"trusted"`
	Chain      []struct {
		Root       string   `json:"root"`
		Signatures []string `json:"signatures"`
	} `json:"chain"`
	Plugin       string  `json:"plugin"`
	Manifest     string  `json:"manifest"`
	PublishedAt  *string `json:"published_at"`
	Now          string  `json:"now"`
	Expect       string  `json:"expect"`
	FinalVersion *int64  `json:"final_version"`
}

func readVector(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vectorsDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verdict(err error) string {
	if err == nil {
		return "ok"
	}
	return AsError(err).Code
}

func TestTrustVectors(t *testing.T) {
	var file struct {
		Cases []vectorCase `json:"cases"`
	}
	if err := json.Unmarshal(readVector(t, "cases.json"), &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 16 {
		t.Fatalf("expected the 16+ vector cases, got %d", len(file.Cases))
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			sigs := func(paths []string) [][]byte {
				var out [][]byte
				for _, p := range paths {
					out = append(out, readVector(t, p))
				}
				return out
			}
			now, _ := ParseTime(c.Now)
			var root *Root
			var err error
			switch c.Kind {
			case "signature":
				var k PublicKey
				if k, err = ParsePublicKey(readVector(t, c.PublicKey)); err == nil {
					_, err = VerifySignature(k, readVector(t, c.Data), readVector(t, c.Signature), false)
				}
			case "root-self":
				root, err = VerifyRootSelf(readVector(t, c.Root), sigs(c.Signatures), now)
			case "root-chain", "release":
				var chain []RootCandidate
				for _, s := range c.Chain {
					chain = append(chain, RootCandidate{Raw: readVector(t, s.Root), Sigs: sigs(s.Signatures)})
				}
				root, err = VerifyRootChain(readVector(t, c.Trusted), chain, now)
				if err == nil && c.Kind == "release" {
					var pub *time.Time
					if c.PublishedAt != nil {
						p, ok := ParseTime(*c.PublishedAt)
						if !ok {
							t.Fatalf("bad published_at %q", *c.PublishedAt)
						}
						pub = &p
					}
					_, err = VerifyReleaseSignatures(root, c.Plugin, readVector(t, c.Manifest), sigs(c.Signatures), now, pub)
				}
			default:
				t.Fatalf("unknown kind %q", c.Kind)
			}
			if got := verdict(err); got != c.Expect {
				t.Fatalf("verdict %q, want %q (%v)", got, c.Expect, err)
			}
			if c.FinalVersion != nil && err == nil && root.Version != *c.FinalVersion {
				t.Fatalf("final version %d, want %d", root.Version, *c.FinalVersion)
			}
		})
	}
}
