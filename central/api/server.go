package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store"
)

// Options configure a Server.
type Options struct {
	Store store.Store
	Blobs *Blobs
	// AdminTokenHash and EnrollKeyHash are hex SHA-256 digests of the admin
	// token and the site enrollment key.
	AdminTokenHash string
	EnrollKeyHash  string
	Log            *slog.Logger
	// RequiredRepeatWindow: a repeat decision for the same client within
	// this time after it consumed a required deployment gets it again (PXE
	// retries of one boot). Zero means a required deployment is offered
	// exactly once.
	RequiredRepeatWindow time.Duration
	// MaxJSONBytes, MaxCSVBytes and MaxUploadBytes limit request bodies.
	MaxJSONBytes, MaxCSVBytes, MaxUploadBytes int64
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Server serves the API.
type Server struct {
	opts    Options
	st      store.Store
	blobs   *Blobs
	log     *slog.Logger
	metrics *metrics
	dec     *decider
	changes *notifier
	now     func() time.Time
	routes  []route

	agentMu    sync.Mutex
	agentCache map[string]agentEntry // token hash -> agent
}

type agentEntry struct {
	agent   model.Agent
	expires time.Time
}

type route struct {
	method, path string
	auth         authLevel
	h            func(w http.ResponseWriter, r *http.Request) error
}

type authLevel int

const (
	public authLevel = iota
	anyToken
	agentOnly
	adminOnly
)

// New returns a Server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxJSONBytes == 0 {
		o.MaxJSONBytes = 1 << 20
	}
	if o.MaxCSVBytes == 0 {
		o.MaxCSVBytes = 64 << 20
	}
	if o.MaxUploadBytes == 0 {
		o.MaxUploadBytes = 8 << 30
	}
	s := &Server{opts: o, st: o.Store, blobs: o.Blobs, log: o.Log, metrics: newMetrics(), changes: newNotifier(), now: o.Now, agentCache: map[string]agentEntry{}}
	s.dec = &decider{st: o.Store, window: o.RequiredRepeatWindow, metrics: s.metrics}
	s.routes = s.routeTable()
	return s
}

// Routes lists "METHOD /path" of every route (for the OpenAPI test).
func (s *Server) Routes() [][2]string {
	out := make([][2]string, len(s.routes))
	for i, rt := range s.routes {
		out[i] = [2]string{rt.method, rt.path}
	}
	return out
}

// Register adds the API routes to mux.
func (s *Server) Register(mux *http.ServeMux) {
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
}

// Handler returns a mux with only the API routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	return mux
}

// Changed is notified after every write made through this server (the web
// page uses it too).
func (s *Server) Changed() { s.changes.bump() }

// Store returns the store the server uses.
func (s *Server) Store() store.Store { return s.st }

type principalKey struct{}

type principal struct {
	admin bool
	agent *model.Agent
}

func hashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// HashSecret returns the hex SHA-256 of a token or key, the form Options
// takes.
func HashSecret(tok string) string { return hashToken(tok) }

// NewSecret returns a random 256-bit token, hex encoded.
func NewSecret() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("api: crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// IsAdminToken reports whether tok is the admin token.
func (s *Server) IsAdminToken(tok string) bool {
	return tok != "" && subtle.ConstantTimeCompare([]byte(hashToken(tok)), []byte(s.opts.AdminTokenHash)) == 1
}

func bearer(r *http.Request) string {
	const p = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) > len(p) && h[:len(p)] == p {
		return h[len(p):]
	}
	return ""
}

func (s *Server) authenticate(r *http.Request) (principal, error) {
	tok := bearer(r)
	if tok == "" {
		return principal{}, errStatus(http.StatusUnauthorized, "missing bearer token")
	}
	if s.IsAdminToken(tok) {
		return principal{admin: true}, nil
	}
	h := hashToken(tok)
	now := s.now()
	s.agentMu.Lock()
	e, ok := s.agentCache[h]
	s.agentMu.Unlock()
	if ok && now.Before(e.expires) {
		a := e.agent
		return principal{agent: &a}, nil
	}
	a, err := s.st.AgentByTokenHash(r.Context(), h)
	if err != nil {
		return principal{}, errStatus(http.StatusUnauthorized, "unknown token")
	}
	s.agentMu.Lock()
	if len(s.agentCache) > 100000 {
		clear(s.agentCache)
	}
	s.agentCache[h] = agentEntry{agent: a, expires: now.Add(time.Minute)}
	s.agentMu.Unlock()
	return principal{agent: &a}, nil
}

func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic serving request", "path", r.URL.Path, "panic", p)
				if !sw.wrote {
					writeJSON(sw, 500, &apiError{Message: "internal error"})
				}
			}
			s.metrics.add(1, "peerboot_central_http_requests_total", "route", rt.method+" "+rt.path, "code", fmt.Sprint(sw.status))
		}()
		if rt.auth != public {
			p, err := s.authenticate(r)
			if err == nil {
				switch {
				case rt.auth == adminOnly && !p.admin:
					err = errStatus(http.StatusForbidden, "admin token required")
				case rt.auth == agentOnly && p.agent == nil:
					err = errStatus(http.StatusForbidden, "agent token required")
				}
			}
			if err != nil {
				s.writeError(sw, r, err)
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		}
		if err := rt.h(sw, r); err != nil {
			s.writeError(sw, r, err)
		}
	})
}

func who(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// notifier wakes long-polls after local writes.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) bump() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}
