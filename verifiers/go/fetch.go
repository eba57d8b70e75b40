package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// ErrNotFound is what a Fetcher returns when the file does not exist (HTTP 404).
var ErrNotFound = errors.New("not found")

// Fetcher is the host's transport. Fetch returns the body of url; it should stop reading after
// maxSize+1 bytes and honour ctx. The verifier does not rely on either: it refuses a longer body
// and abandons a call that outlives its deadline, so a host's own transport cannot weaken the
// caps and deadlines.
type Fetcher interface {
	Fetch(ctx context.Context, url string, maxSize int64) ([]byte, error)
}

// Fixed caps for files whose size no signed metadata declares.
const (
	MaxTopDocument = 64 * 1024
	MaxRootFile    = maxRootBytes
	MaxSignature   = maxSignatureFile
)

// HTTPFetcher is the default Fetcher on net/http: identity encoding only (no decompression
// bombs), redirects only within the same origin, body read up to maxSize+1 bytes.
type HTTPFetcher struct {
	Client *http.Client
}

// NewHTTPFetcher returns an HTTPFetcher with connect and header timeouts.
func NewHTTPFetcher() *HTTPFetcher {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = 15 * time.Second
	transport.DisableCompression = true
	return &HTTPFetcher{Client: &http.Client{
		Transport: transport,
		// As the Python client's HttpFetcher: at most 5 redirects (a 6th is refused), each within
		// the origin asked for (scheme, host case-insensitively, port with the scheme's default).
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxRedirects {
				return fmt.Errorf("more than %d redirects", maxRedirects)
			}
			if origin(req.URL) != origin(via[0].URL) {
				return fmt.Errorf("refusing a redirect to another origin (%s)", req.URL.Redacted())
			}
			return nil
		},
	}}
}

const maxRedirects = 5

// origin is a URL's scheme, lower-cased host name and port (80/443 when absent for http/https).
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// Fetch implements Fetcher.
func (f *HTTPFetcher) Fetch(ctx context.Context, u string, maxSize int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := f.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	// Python's rule: the Content-Encoding header (repeated ones joined by ", "), stripped, must be
	// empty or identity (any case).
	if enc := strings.TrimSpace(strings.Join(resp.Header.Values("Content-Encoding"), ", ")); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, fmt.Errorf("refusing a compressed response (Content-Encoding %s)", enc)
	}
	// A body whose Content-Length announces more than the cap is refused at once (as the Python
	// client does), not read up to the cap or left to run into the deadline.
	if resp.ContentLength > maxSize {
		return nil, &Error{Class: ClassEndlessData, Where: u,
			What: fmt.Sprintf("size differs from the signed size: %s announces %d bytes, but at most %d are allowed (the size the signed metadata gives, or the fixed cap for this file)", u, resp.ContentLength, maxSize),
			Fix:  "the server or a mirror is serving another file than the one signed; nothing was installed. Report it to the registry's maintainers"}
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxSize+1))
}

// transfers enforces the caps and deadlines around the host's Fetcher: one deadline for the whole
// operation, and one per file.
type transfers struct {
	fetcher   Fetcher
	base      *url.URL
	overall   time.Time
	perFile   time.Duration
	downloads atomic.Int64 // a Session may be shared by goroutines
}

// get downloads rel (relative to the registry URL) with a cap; notFoundOK turns a 404 into (nil, nil).
func (t *transfers) get(ctx context.Context, rel string, maxSize int64, notFoundOK bool) ([]byte, error) {
	ref, err := url.Parse(rel)
	if err != nil || ref.IsAbs() || strings.HasPrefix(rel, "/") {
		return nil, &Error{Class: ClassPathTraversal, What: fmt.Sprintf("%q is not a path inside the registry", rel),
			Fix: "the registry's metadata is bad; report it to the registry owners"}
	}
	u := t.base.ResolveReference(ref).String()
	// The caller's own context ended already (cancelled, or its deadline passed): nothing is fetched.
	if err := callerEnded(ctx, u); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(t.perFile)
	if t.overall.Before(deadline) {
		deadline = t.overall
	}
	cctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	t.downloads.Add(1)
	go func() {
		b, err := t.fetcher.Fetch(cctx, u, maxSize)
		done <- result{b, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-cctx.Done():
		// A transport that ignores ctx is abandoned here: the verifier's deadline holds anyway.
		r = result{err: cctx.Err()}
	}
	var verdict *Error
	if r.err != nil {
		// The caller cancelled or its own deadline passed: its verdict, not the server's.
		if err := callerEnded(ctx, u); err != nil {
			return nil, err
		}
	}
	switch {
	case r.err == nil:
	case errors.As(r.err, &verdict) && verdict.Class != "":
		return nil, verdict // the fetcher's own verdict (a Content-Length above the cap)
	case errors.Is(r.err, ErrNotFound):
		if notFoundOK {
			return nil, nil
		}
		return nil, &Error{Class: ClassNetwork, What: fmt.Sprintf("%s does not exist on the server (404)", u), Where: u,
			Fix: "the registry is incomplete or the URL is wrong; check --url and retry later"}
	case errors.Is(r.err, context.DeadlineExceeded) || cctx.Err() != nil:
		return nil, &Error{Class: ClassSlowRetrieval, What: fmt.Sprintf("slow retrieval attack or stalled server: %s did not arrive within the deadline", u),
			Where: u, Fix: "retry later or use another mirror; raise the deadline only if the network is known to be slow",
			cause: context.DeadlineExceeded}
	default:
		return nil, &Error{Class: ClassNetwork, What: fmt.Sprintf("cannot download %s: %v", u, r.err), Where: u,
			Fix: "check the network and the registry URL, then retry"}
	}
	if int64(len(r.body)) > maxSize {
		return nil, &Error{Class: ClassEndlessData, What: fmt.Sprintf("endless data attack: %s is larger than its cap of %d bytes", u, maxSize),
			Where: u, Fix: "the server sends more than the signed metadata allows; use another mirror and report it"}
	}
	return r.body, nil
}

// callerEnded is the refusal for a caller's context that ended, or nil while it runs. A
// cancellation is the host's own decision, not an attack: network, "cancelled by the caller",
// errors.Is(err, context.Canceled). The caller's own deadline (context.WithTimeout) is a deadline
// like Options.Deadline: slow-retrieval, errors.Is(err, context.DeadlineExceeded).
func callerEnded(ctx context.Context, u string) error {
	switch err := ctx.Err(); {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Class: ClassSlowRetrieval, Where: u, cause: err,
			What: fmt.Sprintf("slow retrieval attack or stalled server: %s did not arrive within the caller's context deadline", u),
			Fix:  "retry later or use another mirror; give the context a longer deadline only if the network is known to be slow"}
	default:
		return &Error{Class: ClassNetwork, Where: u, cause: err,
			What: fmt.Sprintf("cancelled by the caller: the download of %s was abandoned (%v)", u, err),
			Fix:  "nothing was committed; run the operation again with a context that is not cancelled"}
	}
}

// FetchFiles downloads optional files (404 skipped) of a registry under the verifier's caps and
// deadlines; hosts use it for a root's signatures when pinning.
func FetchFiles(ctx context.Context, registryURL string, rels []string, maxSize int64, opt Options) ([][]byte, error) {
	base, err := normaliseURL(canonicalRegistryURL(registryURL))
	if err != nil {
		return nil, err
	}
	if opt.Fetcher == nil {
		opt.Fetcher = NewHTTPFetcher()
	}
	if opt.Deadline <= 0 {
		opt.Deadline = 10 * time.Minute
	}
	if opt.FileDeadline <= 0 || opt.FileDeadline > opt.Deadline {
		opt.FileDeadline = opt.Deadline
	}
	t := &transfers{fetcher: opt.Fetcher, base: base, overall: time.Now().Add(opt.Deadline), perFile: opt.FileDeadline}
	var out [][]byte
	for _, rel := range rels {
		b, err := t.get(ctx, rel, maxSize, true)
		if err != nil {
			return nil, err
		}
		if b != nil {
			out = append(out, b)
		}
	}
	return out, nil
}
