package verifier

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
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

// httpSite serves the HTTP answers the Python client's HttpFetcher is held to (docs/trust.md
// 10.2, conformance decision 4): /hop/N redirects to /hop/N-1 (302, or 307 for /hop307/N) and
// /hop/0 is the file; /away redirects to another host name; /gone is 410; /gzip and /br carry a
// Content-Encoding; /identity is identity encoding written in capitals.
func httpSite(t *testing.T) (*transfers, string) {
	t.Helper()
	mux := http.NewServeMux()
	var srv *httptest.Server
	hop := func(prefix string, code int) {
		mux.HandleFunc(prefix, func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, prefix))
			if n == 0 {
				_, _ = w.Write([]byte("file"))
				return
			}
			http.Redirect(w, r, fmt.Sprintf("%s%d", prefix, n-1), code)
		})
	}
	hop("/hop/", http.StatusFound)
	hop("/hop307/", http.StatusTemporaryRedirect)
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)+"/hop/0", http.StatusFound)
	})
	mux.HandleFunc("/gone", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	for _, enc := range []string{"gzip", "br"} {
		enc := enc
		mux.HandleFunc("/"+enc, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", enc)
			_, _ = w.Write([]byte("file"))
		})
	}
	mux.HandleFunc("/identity", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", " IDENTITY ")
		_, _ = w.Write([]byte("file"))
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	base, _ := url.Parse(srv.URL + "/")
	return &transfers{fetcher: NewHTTPFetcher(), base: base, overall: time.Now().Add(30 * time.Second), perFile: 30 * time.Second}, srv.URL
}

func TestHTTPRedirectsWithinTheOriginUpToFive(t *testing.T) {
	x, _ := httpSite(t)
	for _, rel := range []string{"hop/0", "hop/1", "hop/5", "hop307/5"} {
		if b, err := x.get(context.Background(), rel, 100, false); err != nil || string(b) != "file" {
			t.Fatalf("%s: %q, %v", rel, b, err)
		}
	}
	_, err := x.get(context.Background(), "hop/6", 100, false)
	wantClass(t, err, ClassNetwork)
	_, err = x.get(context.Background(), "away", 100, true)
	wantClass(t, err, ClassNetwork)
}

func TestHTTPStatusesBut200And404AndEncodingsAreNetwork(t *testing.T) {
	x, _ := httpSite(t)
	if b, err := x.get(context.Background(), "missing", 100, true); err != nil || b != nil {
		t.Fatalf("404 of an optional file: %q, %v", b, err)
	}
	for _, rel := range []string{"gone", "gzip", "br"} {
		_, err := x.get(context.Background(), rel, 100, true)
		wantClass(t, err, ClassNetwork)
	}
	if b, err := x.get(context.Background(), "identity", 100, false); err != nil || string(b) != "file" {
		t.Fatalf("identity encoding: %q, %v", b, err)
	}
}

// rawServer answers every connection on 127.0.0.1 with head (status line and headers), then one
// body byte, then stalls until the test ends.
func rawServer(t *testing.T, head string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n') // the request line is enough
				_, _ = c.Write([]byte(head + "\r\nx"))
				<-stop
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/"
}

// A Content-Length above the cap is endless-data at once (the body is neither awaited nor read
// to the cap), as in the Python client; two Content-Length headers that disagree are network.
func TestHTTPContentLengthAboveTheCapIsRefusedAtOnce(t *testing.T) {
	for _, c := range []struct {
		head  string
		class Class
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n", ClassEndlessData},
		{"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n", ClassEndlessData},
		{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n", ClassNetwork},
		{"HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n", ClassNetwork},
	} {
		base, _ := url.Parse(rawServer(t, c.head))
		x := &transfers{fetcher: NewHTTPFetcher(), base: base, overall: time.Now().Add(30 * time.Second), perFile: 30 * time.Second}
		start := time.Now()
		_, err := x.get(context.Background(), "file", 100, false)
		wantClass(t, err, c.class)
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%q: refused after %v, not at once", c.head, time.Since(start))
		}
	}
}

// A host cancelling its own context is its decision, not an attack: network, "cancelled by the
// caller", errors.Is(err, context.Canceled), whether it cancels mid-download (a transport that
// ignores ctx included) or passes a context cancelled already. The caller's own deadline is a
// deadline (slow-retrieval) that errors.Is matches as context.DeadlineExceeded; the verifier's own
// deadline stays slow-retrieval and is no cancellation.
func TestACallersCancellationIsNotSlowRetrieval(t *testing.T) {
	wantCancelled := func(t *testing.T, err error) {
		t.Helper()
		wantClass(t, err, ClassNetwork)
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled by the caller") {
			t.Fatalf("not reported as the caller's cancellation: %v", err)
		}
	}
	block := make(chan struct{})
	defer close(block)
	x := newTransfers(&hostileFetcher{block: block}, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := x.get(ctx, "registry.json", MaxTopDocument, false)
	wantCancelled(t, err)

	// Already cancelled: FetchFiles and Refresh (over HTTP) fetch nothing and say so.
	e := newEnv(t)
	_, err = FetchFiles(ctx, e.site.url(), []string{"root/1.root.json"}, MaxRootFile, Options{Deadline: 5 * time.Second})
	wantCancelled(t, err)
	_, err = Refresh(ctx, e.state, e.site.url(), Options{Now: testNow, Deadline: 5 * time.Second})
	wantCancelled(t, err)

	// The caller's deadline (context.WithTimeout) mid-download.
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	_, err = x.get(dctx, "registry.json", MaxTopDocument, false)
	wantClass(t, err, ClassSlowRetrieval)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Fatalf("the caller's deadline is not context.DeadlineExceeded: %v", err)
	}

	// The verifier's own deadline.
	_, err = newTransfers(&hostileFetcher{block: block}, 50*time.Millisecond).get(context.Background(), "registry.json", MaxTopDocument, false)
	wantClass(t, err, ClassSlowRetrieval)
	if errors.Is(err, context.Canceled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the verifier's deadline: %v", err)
	}
}
