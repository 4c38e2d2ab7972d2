package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
)

// Client talks to one Central.
type Client struct {
	base  string
	token string
	hc    *http.Client
	// Retries is how many times idempotent calls (events, downloads) are
	// retried after a network error or a 5xx, with doubling backoff.
	Retries int
	Backoff time.Duration
}

// New returns a client for Central at baseURL (e.g. https://central:8443)
// using token (an agent token, the admin token, or "" before enrolling).
// hc nil means a client with keep-alive and no overall timeout (long-polls
// and downloads are bounded by their contexts).
func New(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc, Retries: 3, Backoff: 200 * time.Millisecond}
}

// Token returns the bearer token in use.
func (c *Client) Token() string { return c.token }

// SetToken sets the bearer token (after Enroll).
func (c *Client) SetToken(tok string) { c.token = tok }

// Error is an error answer from Central.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("central: %d: %s", e.Status, e.Message)
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("central: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func readError(resp *http.Response) error {
	e := &Error{Status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
	}
	return e
}

// Do sends a JSON request (in may be nil) and decodes a JSON answer into
// out (may be nil). It is exported for admin tools.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("central: encode %s: %w", path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("central: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return readError(resp)
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("central: decode %s: %w", path, err)
	}
	return nil
}

func retryable(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Status >= 500
	}
	return err != nil
}

func (c *Client) retry(ctx context.Context, fn func() error) error {
	wait := c.Backoff
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !retryable(err) || attempt >= c.Retries || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// Enroll enrolls an agent with the site enrollment key and, on success,
// uses the returned token for later calls.
func (c *Client) Enroll(ctx context.Context, req api.EnrollRequest) (api.EnrollResponse, error) {
	var out api.EnrollResponse
	if err := c.Do(ctx, "POST", "/api/v1/agents/enroll", req, &out); err != nil {
		return out, err
	}
	c.token = out.Token
	return out, nil
}

// Heartbeat reports the agent's state.
func (c *Client) Heartbeat(ctx context.Context, hb api.Heartbeat) (model.Agent, error) {
	var out model.Agent
	err := c.Do(ctx, "POST", "/api/v1/agents/heartbeat", hb, &out)
	return out, err
}

// Decide asks what a PXE client should boot.
func (c *Client) Decide(ctx context.Context, req api.DecideRequest) (decide.Decision, error) {
	var out decide.Decision
	err := c.Do(ctx, "POST", "/api/v1/decide", req, &out)
	return out, err
}

// DecisionSet fetches the decision set for subnets. With etag set and wait
// > 0 Central holds the request until the set changes or wait passes; an
// unchanged set returns (nil, etag, nil).
func (c *Client) DecisionSet(ctx context.Context, subnets []string, etag string, wait time.Duration) (*api.DecisionSet, string, error) {
	v := url.Values{}
	for _, s := range subnets {
		v.Add("subnet", s)
	}
	if wait > 0 {
		v.Set("wait", wait.String())
	}
	req, err := c.newRequest(ctx, "GET", "/api/v1/decision-set?"+v.Encode(), nil)
	if err != nil {
		return nil, etag, err
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, etag, fmt.Errorf("central: decision set: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, etag, nil
	case resp.StatusCode != http.StatusOK:
		return nil, etag, readError(resp)
	}
	var set api.DecisionSet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, etag, fmt.Errorf("central: decode decision set: %w", err)
	}
	return &set, resp.Header.Get("ETag"), nil
}

// PostEvents posts a batch; events need ids unique per agent, which makes
// the automatic retries (and any retry by the caller) safe.
func (c *Client) PostEvents(ctx context.Context, evs []model.Event) (api.EventBatchResult, error) {
	for i, e := range evs {
		if e.ID == "" {
			return api.EventBatchResult{}, fmt.Errorf("central: event %d has no id", i)
		}
	}
	var out api.EventBatchResult
	err := c.retry(ctx, func() error { return c.Do(ctx, "POST", "/api/v1/events", api.EventBatch{Events: evs}, &out) })
	return out, err
}

// ErrChecksum is returned when a downloaded file does not match its
// SHA-256; the partial file is removed so the next try starts over.
var ErrChecksum = errors.New("sha256 mismatch")

// Download fetches the blob with the given SHA-256 into path. It resumes
// from path+".part" with an HTTP range request, verifies the digest of the
// whole file, and only then renames it to path.
func (c *Client) Download(ctx context.Context, sum, path string) error {
	sum = strings.ToLower(sum)
	if _, err := model.NormalizeSHA256(sum); err != nil {
		return fmt.Errorf("central: download: %w", err)
	}
	part := path + ".part"
	err := c.retry(ctx, func() error { return c.downloadOnce(ctx, sum, part) })
	if err != nil {
		return err
	}
	if err := verifyFile(part, sum); err != nil {
		os.Remove(part)
		return err
	}
	if err := os.Rename(part, path); err != nil {
		return fmt.Errorf("central: download: %w", err)
	}
	return nil
}

func (c *Client) downloadOnce(ctx context.Context, sum, part string) error {
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("central: download: %w", err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("central: download: %w", err)
	}
	req, err := c.newRequest(ctx, "GET", "/api/v1/blobs/"+sum, nil)
	if err != nil {
		return err
	}
	if have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", have))
		req.Header.Set("If-Range", `"`+sum+`"`)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("central: download %s: %w", sum, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK: // whole file: start over
		if err := f.Truncate(0); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	case http.StatusRequestedRangeNotSatisfiable: // already complete (or longer: verify decides)
		return nil
	default:
		return readError(resp)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("central: download %s: %w", sum, err)
	}
	return f.Sync()
}

func verifyFile(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("central: verify: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("central: verify: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("central: %s: got %s: %w", want, got, ErrChecksum)
	}
	return nil
}
