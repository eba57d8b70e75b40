package verifier

import (
	"context"
	"net/url"
	"testing"
	"time"
)

// hostileFetcher is a host transport that ignores both the cap and the context.
type hostileFetcher struct {
	body  []byte
	block chan struct{}
}

func (f *hostileFetcher) Fetch(_ context.Context, _ string, _ int64) ([]byte, error) {
	if f.block != nil {
		<-f.block // never honours ctx
	}
	return f.body, nil
}

func newTransfers(f Fetcher, overall time.Duration) *transfers {
	base, _ := url.Parse("http://127.0.0.1:1/")
	return &transfers{fetcher: f, base: base, overall: time.Now().Add(overall), perFile: overall}
}

func TestHostFetcherCannotExceedTheCap(t *testing.T) {
	x := newTransfers(&hostileFetcher{body: make([]byte, 101)}, time.Second)
	_, err := x.get(context.Background(), "meta/aa/x.json", 100, false)
	wantClass(t, err, ClassEndlessData)
	if b, err := x.get(context.Background(), "meta/aa/x.json", 101, false); err != nil || len(b) != 101 {
		t.Fatalf("a body of exactly the cap: %v", err)
	}
}

func TestHostFetcherIgnoringTheContextStillMeetsTheDeadline(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	x := newTransfers(&hostileFetcher{block: block}, 200*time.Millisecond)
	started := time.Now()
	_, err := x.get(context.Background(), "registry.json", MaxTopDocument, false)
	wantClass(t, err, ClassSlowRetrieval)
	if time.Since(started) > 30*time.Second {
		t.Fatal("the verifier waited for the host's transport")
	}
}

func TestPathsOutsideTheRegistryAreNotFetched(t *testing.T) {
	x := newTransfers(&hostileFetcher{body: []byte("x")}, time.Second)
	for _, rel := range []string{"http://evil.example/x", "/etc/passwd", "//evil.example/x"} {
		_, err := x.get(context.Background(), rel, 10, false)
		wantClass(t, err, ClassPathTraversal)
	}
}
