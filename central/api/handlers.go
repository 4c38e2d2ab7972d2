package api

import (
	"crypto/subtle"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/central/store"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI document the server serves.
func OpenAPI() []byte { return openAPI }

func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/healthz", public, s.healthz},
		{"GET", "/metrics", public, s.metricsHandler},
		{"GET", "/api/v1/openapi.json", public, s.openapi},

		{"POST", "/api/v1/agents/enroll", public, s.enroll},
		{"POST", "/api/v1/agents/heartbeat", agentOnly, s.heartbeat},
		{"GET", "/api/v1/agents", anyToken, s.listAgents},
		{"GET", "/api/v1/subnets", anyToken, s.listSubnets},
		{"POST", "/api/v1/decide", anyToken, s.decideHandler},
		{"GET", "/api/v1/decision-set", anyToken, s.decisionSet},
		{"POST", "/api/v1/events", agentOnly, s.postEvents},
		{"GET", "/api/v1/events", anyToken, s.listEvents},

		{"GET", "/api/v1/machines", adminOnly, s.listMachines},
		{"POST", "/api/v1/machines", adminOnly, s.createMachine},
		{"POST", "/api/v1/machines/import", adminOnly, s.importMachines},
		{"GET", "/api/v1/machines/{id}", adminOnly, s.getMachine},
		{"PUT", "/api/v1/machines/{id}", adminOnly, s.putMachine},
		{"DELETE", "/api/v1/machines/{id}", adminOnly, s.deleteMachine},
		{"POST", "/api/v1/machines/{id}/clear-required", adminOnly, s.clearMachine},
		{"POST", "/api/v1/clear-required", adminOnly, s.clearClient},

		{"GET", "/api/v1/deployments", adminOnly, s.listDeployments},
		{"POST", "/api/v1/deployments", adminOnly, s.createDeployment},
		{"GET", "/api/v1/deployments/{id}", adminOnly, s.getDeployment},
		{"PUT", "/api/v1/deployments/{id}", adminOnly, s.putDeployment},
		{"DELETE", "/api/v1/deployments/{id}", adminOnly, s.deleteDeployment},

		{"GET", "/api/v1/images", anyToken, s.listImages},
		{"POST", "/api/v1/images", adminOnly, s.createImage},
		{"POST", "/api/v1/images/register", adminOnly, s.registerImage},
		{"GET", "/api/v1/images/{id}", anyToken, s.getImage},
		{"DELETE", "/api/v1/images/{id}", adminOnly, s.deleteImage},
		{"GET", "/api/v1/images/{id}/files/{name}", anyToken, s.downloadImageFile},
		{"PUT", "/api/v1/blobs/{sha256}", adminOnly, s.uploadBlob},
		{"GET", "/api/v1/blobs/{sha256}", anyToken, s.downloadBlob},

		{"GET", "/api/v1/ignored-macs", adminOnly, s.listIgnored},
		{"PUT", "/api/v1/ignored-macs/{mac}", adminOnly, s.putIgnored},
		{"DELETE", "/api/v1/ignored-macs/{mac}", adminOnly, s.deleteIgnored},
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.st.Version(r.Context()); err != nil {
		return errStatus(http.StatusServiceUnavailable, "store unavailable: %v", err)
	}
	writeJSON(w, 200, map[string]string{"status": "ok"})
	return nil
}

func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.metrics.write(w)
	return nil
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
	return nil
}

// ---- agents ----

// EnrollRequest is the body of POST /api/v1/agents/enroll.
type EnrollRequest struct {
	EnrollmentKey string   `json:"enrollment_key"`
	Host          string   `json:"host"`
	Subnets       []string `json:"subnets"`
	Addresses     []string `json:"addresses"`
	Version       string   `json:"version"`
	Weight        int      `json:"weight"`
}

// EnrollResponse is its answer: the agent's id and its bearer token.
type EnrollResponse struct {
	AgentID string `json:"agent_id"`
	Token   string `json:"token"`
}

func checkSubnets(field string, l []string) error {
	for i, sn := range l {
		if _, err := decide.ParseSubnet(sn); err != nil {
			return badField(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
	}
	return nil
}

func checkAddrs(field string, l []string) error {
	for i, a := range l {
		if _, err := netip.ParseAddr(a); err != nil {
			return badField(fmt.Sprintf("%s[%d]", field, i), "not an IP address")
		}
	}
	return nil
}

func checkWeight(w int) error {
	if w < 0 || w > 100 {
		return badField("weight", "must be 0..100")
	}
	return nil
}

func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	var req EnrollRequest
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &req); err != nil {
		return err
	}
	if req.EnrollmentKey == "" || subtle.ConstantTimeCompare([]byte(hashToken(req.EnrollmentKey)), []byte(s.opts.EnrollKeyHash)) != 1 {
		return &apiError{Status: http.StatusUnauthorized, Field: "enrollment_key", Message: "enrollment_key: wrong or missing"}
	}
	if req.Host == "" || len(req.Host) > 255 {
		return badField("host", "required, at most 255 characters")
	}
	if err := errors.Join(checkSubnets("subnets", req.Subnets), checkAddrs("addresses", req.Addresses), checkWeight(req.Weight)); err != nil {
		return firstAPIError(err)
	}
	now := s.now().UTC()
	a := model.Agent{ID: model.NewID("a-"), Host: req.Host, Subnets: req.Subnets, Addresses: req.Addresses, Version: req.Version, Weight: req.Weight, Images: []string{}, EnrolledAt: now, LastSeen: now}
	tok := NewSecret()
	if err := s.st.CreateAgent(r.Context(), a, hashToken(tok)); err != nil {
		return err
	}
	s.log.Info("agent enrolled", "agent", a.ID, "host", a.Host)
	writeJSON(w, http.StatusCreated, EnrollResponse{AgentID: a.ID, Token: tok})
	return nil
}

func firstAPIError(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return err
}

// Heartbeat is the body of POST /api/v1/agents/heartbeat.
type Heartbeat struct {
	Host      string   `json:"host"`
	Subnets   []string `json:"subnets"`
	Addresses []string `json:"addresses"`
	Version   string   `json:"version"`
	Weight    int      `json:"weight"`
	Load      float64  `json:"load"`
	Images    []string `json:"images"`
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	var hb Heartbeat
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &hb); err != nil {
		return err
	}
	if err := errors.Join(checkSubnets("subnets", hb.Subnets), checkAddrs("addresses", hb.Addresses), checkWeight(hb.Weight)); err != nil {
		return firstAPIError(err)
	}
	if hb.Load < 0 {
		return badField("load", "must not be negative")
	}
	a := *who(r).agent
	if hb.Host != "" {
		a.Host = hb.Host
	}
	a.Subnets, a.Addresses, a.Version, a.Weight, a.Load, a.Images = hb.Subnets, hb.Addresses, hb.Version, hb.Weight, hb.Load, hb.Images
	a.LastSeen = s.now().UTC()
	if err := s.st.UpdateAgent(r.Context(), a); err != nil {
		return err
	}
	writeJSON(w, 200, a)
	return nil
}

func subnetsOverlap(a, b []string) bool {
	for _, x := range a {
		px, err := decide.ParseSubnet(x)
		if err != nil {
			continue
		}
		for _, y := range b {
			py, err := decide.ParseSubnet(y)
			if err == nil && px.Overlaps(py) {
				return true
			}
		}
	}
	return false
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	agents, err := s.st.ListAgents(r.Context())
	if err != nil {
		return err
	}
	if sn := r.URL.Query().Get("subnet"); sn != "" {
		if _, err := decide.ParseSubnet(sn); err != nil {
			return badField("subnet", "%v", err)
		}
		agents = slices.DeleteFunc(agents, func(a model.Agent) bool { return !subnetsOverlap(a.Subnets, []string{sn}) })
	}
	writeJSON(w, 200, agents)
	return nil
}

// SubnetSummary is one row of GET /api/v1/subnets.
type SubnetSummary struct {
	Subnet string        `json:"subnet"`
	Agents []model.Agent `json:"agents"`
	// Served counts recent pxe.boot events per agent id.
	Served map[string]int `json:"served"`
	Boots  []model.Event  `json:"recent_boots"`
}

// Subnets summarises agents per subnet with who served which recent boots.
func (s *Server) Subnets(r *http.Request) ([]SubnetSummary, error) {
	agents, err := s.st.ListAgents(r.Context())
	if err != nil {
		return nil, err
	}
	boots, err := s.st.RecentEvents(r.Context(), model.EventPXEBoot, 500)
	if err != nil {
		return nil, err
	}
	by := map[string]*SubnetSummary{}
	var order []string
	get := func(sn string) *SubnetSummary {
		if x := by[sn]; x != nil {
			return x
		}
		x := &SubnetSummary{Subnet: sn, Agents: []model.Agent{}, Served: map[string]int{}, Boots: []model.Event{}}
		by[sn] = x
		order = append(order, sn)
		return x
	}
	for _, a := range agents {
		for _, sn := range a.Subnets {
			x := get(sn)
			x.Agents = append(x.Agents, a)
		}
	}
	for _, e := range boots {
		if e.Subnet == "" {
			continue
		}
		x := get(e.Subnet)
		x.Served[e.AgentID]++
		if len(x.Boots) < 20 {
			x.Boots = append(x.Boots, e)
		}
	}
	slices.Sort(order)
	out := make([]SubnetSummary, 0, len(order))
	for _, sn := range order {
		out = append(out, *by[sn])
	}
	return out, nil
}

func (s *Server) listSubnets(w http.ResponseWriter, r *http.Request) error {
	out, err := s.Subnets(r)
	if err != nil {
		return err
	}
	writeJSON(w, 200, out)
	return nil
}

// ---- decisions ----

// DecideRequest is the body of POST /api/v1/decide.
type DecideRequest struct {
	MAC    string `json:"mac"`
	GUID   string `json:"guid"`
	Arch   string `json:"arch"`
	Subnet string `json:"subnet"`
	// Peek asks without consuming a required deployment.
	Peek bool `json:"peek"`
}

func parseDecideRequest(req DecideRequest) (decide.Request, error) {
	var out decide.Request
	var err error
	if req.MAC != "" {
		if out.MAC, err = model.NormalizeMAC(req.MAC); err != nil {
			return out, badField("mac", "%v", err)
		}
	}
	if req.GUID != "" {
		g, usable, err := model.NormalizeGUID(req.GUID)
		if err != nil {
			return out, badField("guid", "%v", err)
		}
		if usable {
			out.GUID = g
		}
	}
	if req.MAC == "" && req.GUID == "" {
		return out, badField("mac", "mac or guid required")
	}
	if out.Arch, err = decide.ParseClientArch(req.Arch); err != nil {
		return out, badField("arch", "%v", err)
	}
	if req.Subnet != "" {
		p, err := decide.ParseSubnet(req.Subnet)
		if err != nil {
			return out, badField("subnet", "%v", err)
		}
		out.Subnet = p.Addr()
	}
	return out, nil
}

func (s *Server) decideHandler(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	var body DecideRequest
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &body); err != nil {
		return err
	}
	req, err := parseDecideRequest(body)
	if err != nil {
		return err
	}
	req.Now = s.now()
	d, _, err := s.dec.decide(r.Context(), req)
	if err != nil {
		return err
	}
	if d.Boot && d.Required && !d.Repeat && !body.Peek {
		if err := s.st.RecordConsumption(r.Context(), model.Consumption{DeploymentID: d.DeploymentID, ClientKey: d.ClientKey, At: req.Now.UTC()}); err != nil {
			return fmt.Errorf("record required deployment run: %w", err)
		}
		s.changes.bump()
	}
	outcome := "none"
	switch {
	case d.Boot && d.Required:
		outcome = "required"
	case d.Boot:
		outcome = "available"
	case d.Reason == decide.ReasonIgnored:
		outcome = "ignored"
	}
	s.metrics.add(1, "peerboot_central_decisions_total", "outcome", outcome)
	writeJSON(w, 200, d)
	s.metrics.observeDecide(time.Since(start))
	return nil
}

// DecisionSet is what agents cache to decide locally when Central is down.
type DecisionSet struct {
	Version              model.Version       `json:"version"`
	Subnets              []string            `json:"subnets,omitempty"`
	Config               model.Config        `json:"config"`
	Consumptions         []model.Consumption `json:"consumptions"`
	RequiredRepeatWindow float64             `json:"required_repeat_window_seconds"`
}

// ETag returns the entity tag of a version.
func ETag(v model.Version) string { return fmt.Sprintf(`"%d.%d"`, v.Config, v.State) }

const maxWait = 60 * time.Second

func (s *Server) decisionSet(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	subnets := q["subnet"]
	if err := checkSubnets("subnet", subnets); err != nil {
		return err
	}
	var wait time.Duration
	if ws := q.Get("wait"); ws != "" {
		d, err := time.ParseDuration(ws)
		if err != nil {
			secs, err2 := strconv.Atoi(ws)
			if err2 != nil {
				return badField("wait", "want a duration such as 30s")
			}
			d = time.Duration(secs) * time.Second
		}
		if d < 0 || d > maxWait {
			return badField("wait", "must be between 0 and %v", maxWait)
		}
		wait = d
	}
	inm := r.Header.Get("If-None-Match")
	v, err := s.st.Version(r.Context())
	if err != nil {
		return err
	}
	if inm != "" && inm == ETag(v) && wait > 0 {
		s.metrics.add(1, "peerboot_central_longpolls_total")
		timer := time.NewTimer(wait)
		defer timer.Stop()
		tick := time.NewTicker(time.Second) // other replicas' writes
		defer tick.Stop()
	poll:
		for inm == ETag(v) {
			select {
			case <-r.Context().Done():
				return nil
			case <-timer.C:
				break poll
			case <-s.changes.wait():
			case <-tick.C:
			}
			if v, err = s.st.Version(r.Context()); err != nil {
				return err
			}
		}
	}
	if inm != "" && inm == ETag(v) {
		w.Header().Set("ETag", ETag(v))
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	cfg, v, err := s.st.Config(r.Context())
	if err != nil {
		return err
	}
	cons, err := s.st.ListConsumptions(r.Context())
	if err != nil {
		return err
	}
	if len(subnets) > 0 {
		cfg.Deployments = slices.DeleteFunc(cfg.Deployments, func(d model.Deployment) bool {
			return len(d.Subnets) > 0 && !subnetsOverlap(d.Subnets, subnets)
		})
	}
	w.Header().Set("ETag", ETag(v))
	writeJSON(w, 200, DecisionSet{Version: v, Subnets: subnets, Config: cfg, Consumptions: cons, RequiredRepeatWindow: s.opts.RequiredRepeatWindow.Seconds()})
	return nil
}

// ---- events ----

// EventBatch is the body of POST /api/v1/events.
type EventBatch struct {
	Events []model.Event `json:"events"`
}

// EventBatchResult says how many events were new and how many were retries.
type EventBatchResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

const maxBatch = 1000

func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) error {
	var b EventBatch
	if err := decodeJSON(w, r, 4*s.opts.MaxJSONBytes, &b); err != nil {
		return err
	}
	if len(b.Events) > maxBatch {
		return badField("events", "at most %d events per batch", maxBatch)
	}
	agent := who(r).agent
	now := s.now().UTC()
	for i := range b.Events {
		e := &b.Events[i]
		f := func(name string) string { return fmt.Sprintf("events[%d].%s", i, name) }
		if e.ID == "" || len(e.ID) > 128 {
			return badField(f("id"), "required, at most 128 characters")
		}
		if e.Type == "" || len(e.Type) > 64 {
			return badField(f("type"), "required, at most 64 characters")
		}
		if e.MAC != "" {
			m, err := model.NormalizeMAC(e.MAC)
			if err != nil {
				return badField(f("mac"), "%v", err)
			}
			e.MAC = m
		}
		if e.GUID != "" {
			g, _, err := model.NormalizeGUID(e.GUID)
			if err != nil {
				return badField(f("guid"), "%v", err)
			}
			e.GUID = g
		}
		if len(e.Detail) > 16<<10 {
			return badField(f("detail"), "at most 16 KiB")
		}
		if e.Time.IsZero() {
			e.Time = now
		}
		e.AgentID, e.ReceivedAt = agent.ID, now
	}
	n, err := s.st.AddEvents(r.Context(), b.Events)
	if err != nil {
		return err
	}
	// A boot an agent served on its own (Central unreachable, or from its
	// decision set) consumes the required deployment just like a decision.
	consumed := false
	for _, e := range b.Events {
		if !consumesRequired(e) {
			continue
		}
		snap, err := s.dec.snapshotAtLeast(r.Context(), 0)
		if err != nil {
			return err
		}
		guid := e.GUID
		if _, usable, _ := model.NormalizeGUID(guid); !usable {
			guid = ""
		}
		key, _ := snap.ix.ClientKey(e.MAC, guid)
		if key == "" {
			continue
		}
		err = s.st.RecordConsumption(r.Context(), model.Consumption{DeploymentID: e.DeploymentID, ClientKey: key, At: e.Time.UTC()})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		consumed = true
	}
	if consumed {
		s.changes.bump()
	}
	s.metrics.add(int64(n), "peerboot_central_events_total", "result", "new")
	s.metrics.add(int64(len(b.Events)-n), "peerboot_central_events_total", "result", "duplicate")
	writeJSON(w, 200, EventBatchResult{Accepted: n, Duplicates: len(b.Events) - n})
	return nil
}

// consumesRequired reports whether an agent's event says a client was sent
// a required deployment: a served boot (pxe.boot), or a boot decision the
// agent took on its own from its cached decision set (pxe.decision with
// action "boot") while Central was out of reach. Recording a consumption
// twice is harmless, so decisions Central took itself may be reported too.
func consumesRequired(e model.Event) bool {
	if !e.Required || e.DeploymentID == "" {
		return false
	}
	switch e.Type {
	case model.EventPXEBoot:
		return true
	case model.EventPXEDecision:
		var d struct {
			Action string `json:"action"`
		}
		return json.Unmarshal(e.Detail, &d) == nil && d.Action == "boot"
	}
	return false
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) error {
	limit := 100
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return badField("limit", "want 1..10000")
		}
		limit = n
	}
	evs, err := s.st.RecentEvents(r.Context(), r.URL.Query().Get("type"), limit)
	if err != nil {
		return err
	}
	writeJSON(w, 200, evs)
	return nil
}

// ---- machines ----

func normalizeMachine(m model.Machine, prefix string) (model.Machine, error) {
	if m.ID == "" {
		m.ID = model.NewID("m-")
	}
	if !model.ValidID(m.ID) {
		return m, badField(prefix+"id", "1-64 letters, digits, '-', '_' or '.'")
	}
	if len(m.Name) > 255 {
		return m, badField(prefix+"name", "at most 255 characters")
	}
	var err error
	if m.MAC != "" {
		if m.MAC, err = model.NormalizeMAC(m.MAC); err != nil {
			return m, badField(prefix+"mac", "%v", err)
		}
	}
	if m.GUID != "" {
		g, usable, err := model.NormalizeGUID(m.GUID)
		if err != nil {
			return m, badField(prefix+"guid", "%v", err)
		}
		m.GUID = ""
		if usable {
			m.GUID = g
		}
	}
	if m.MAC == "" && m.GUID == "" {
		return m, badField(prefix+"mac", "a mac or a usable guid is required")
	}
	return m, nil
}

func (s *Server) listMachines(w http.ResponseWriter, r *http.Request) error {
	ms, err := s.st.ListMachines(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, ms)
	return nil
}

func (s *Server) createMachine(w http.ResponseWriter, r *http.Request) error {
	var m model.Machine
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &m); err != nil {
		return err
	}
	return s.saveMachine(w, r, m, http.StatusCreated)
}

func (s *Server) putMachine(w http.ResponseWriter, r *http.Request) error {
	var m model.Machine
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &m); err != nil {
		return err
	}
	if m.ID != "" && m.ID != r.PathValue("id") {
		return badField("id", "does not match the URL")
	}
	m.ID = r.PathValue("id")
	return s.saveMachine(w, r, m, http.StatusOK)
}

func (s *Server) saveMachine(w http.ResponseWriter, r *http.Request, m model.Machine, status int) error {
	m, err := normalizeMachine(m, "")
	if err != nil {
		return err
	}
	if err := s.st.UpsertMachines(r.Context(), []model.Machine{m}); err != nil {
		return err
	}
	s.changes.bump()
	writeJSON(w, status, m)
	return nil
}

func (s *Server) getMachine(w http.ResponseWriter, r *http.Request) error {
	m, err := s.st.GetMachine(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, m)
	return nil
}

func (s *Server) deleteMachine(w http.ResponseWriter, r *http.Request) error {
	if err := s.st.DeleteMachine(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	s.changes.bump()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ClearResult is the answer of the clear-required endpoints.
type ClearResult struct {
	ClientKey string `json:"client_key"`
	Cleared   int    `json:"cleared"`
}

// ClearMachine clears the required deployments a machine consumed, so they
// are offered again ("clear required PXE deployments").
func (s *Server) ClearMachine(r *http.Request, id string) (ClearResult, error) {
	if _, err := s.st.GetMachine(r.Context(), id); err != nil {
		return ClearResult{}, err
	}
	key := "m:" + id
	n, err := s.st.ClearConsumptions(r.Context(), key)
	if err != nil {
		return ClearResult{}, err
	}
	s.changes.bump()
	s.log.Info("cleared required deployments", "client", key, "count", n)
	return ClearResult{ClientKey: key, Cleared: n}, nil
}

func (s *Server) clearMachine(w http.ResponseWriter, r *http.Request) error {
	res, err := s.ClearMachine(r, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, res)
	return nil
}

// ClearRequest names a client (possibly unknown) by MAC or GUID.
type ClearRequest struct {
	MAC  string `json:"mac"`
	GUID string `json:"guid"`
}

func (s *Server) clearClient(w http.ResponseWriter, r *http.Request) error {
	var req ClearRequest
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &req); err != nil {
		return err
	}
	dr, err := parseDecideRequest(DecideRequest{MAC: req.MAC, GUID: req.GUID, Arch: "uefi-x64"})
	if err != nil {
		return err
	}
	snap, err := s.dec.snapshotAtLeast(r.Context(), 0)
	if err != nil {
		return err
	}
	key, _ := snap.ix.ClientKey(dr.MAC, dr.GUID)
	if key == "" {
		return badField("guid", "unusable guid and no mac")
	}
	n, err := s.st.ClearConsumptions(r.Context(), key)
	if err != nil {
		return err
	}
	s.changes.bump()
	writeJSON(w, 200, ClearResult{ClientKey: key, Cleared: n})
	return nil
}

// ImportResult is the answer of a CSV import.
type ImportResult struct {
	Imported int `json:"imported"`
}

// ParseMachinesCSV reads machines from CSV with a header row naming the
// columns (name, mac, guid, id; any order, mac or guid required). Errors
// name the line and column.
func ParseMachinesCSV(rd io.Reader) ([]model.Machine, error) {
	cr := csv.NewReader(rd)
	cr.TrimLeadingSpace = true
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, badField("csv", "missing header row: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch h {
		case "id", "name", "mac", "guid":
			col[h] = i
		default:
			return nil, badField("csv", "line 1: unknown column %q (want id, name, mac, guid)", h)
		}
	}
	if _, ok := col["mac"]; !ok {
		if _, ok := col["guid"]; !ok {
			return nil, badField("csv", "line 1: need a mac or a guid column")
		}
	}
	var out []model.Machine
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, badField("csv", "%v", err)
		}
		get := func(k string) string {
			if i, ok := col[k]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		m := model.Machine{ID: get("id"), Name: get("name"), MAC: get("mac"), GUID: get("guid")}
		if m.ID == "" && model.ValidID(m.Name) {
			m.ID = m.Name
		}
		m, err = normalizeMachine(m, "")
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				return nil, badField("csv", "line %d: %s", line, ae.Message)
			}
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

func (s *Server) importMachines(w http.ResponseWriter, r *http.Request) error {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxCSVBytes)
	ms, err := ParseMachinesCSV(body)
	if err != nil {
		return err
	}
	if err := s.st.UpsertMachines(r.Context(), ms); err != nil {
		return err
	}
	s.changes.bump()
	writeJSON(w, 200, ImportResult{Imported: len(ms)})
	return nil
}

// ---- deployments ----

func (s *Server) validateDeployment(d *model.Deployment) error {
	if d.ID == "" {
		d.ID = model.NewID("d-")
	}
	if !model.ValidID(d.ID) {
		return badField("id", "1-64 letters, digits, '-', '_' or '.'")
	}
	if d.UnknownComputers == (d.MachineID != "") {
		return badField("machine_id", "give a machine_id or unknown_computers: true (not both)")
	}
	if d.ImageID == "" {
		return badField("image_id", "required")
	}
	return checkSubnets("subnets", d.Subnets)
}

func (s *Server) listDeployments(w http.ResponseWriter, r *http.Request) error {
	ds, err := s.st.ListDeployments(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, ds)
	return nil
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) error {
	var d model.Deployment
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &d); err != nil {
		return err
	}
	d.CreatedAt = s.now().UTC()
	return s.saveDeployment(w, r, d, http.StatusCreated)
}

func (s *Server) putDeployment(w http.ResponseWriter, r *http.Request) error {
	var d model.Deployment
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &d); err != nil {
		return err
	}
	if d.ID != "" && d.ID != r.PathValue("id") {
		return badField("id", "does not match the URL")
	}
	d.ID = r.PathValue("id")
	d.CreatedAt = s.now().UTC()
	if old, err := s.st.GetDeployment(r.Context(), d.ID); err == nil {
		d.CreatedAt = old.CreatedAt
	}
	return s.saveDeployment(w, r, d, http.StatusOK)
}

func (s *Server) saveDeployment(w http.ResponseWriter, r *http.Request, d model.Deployment, status int) error {
	if err := s.validateDeployment(&d); err != nil {
		return err
	}
	if err := s.st.UpsertDeployment(r.Context(), d); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			field := "image_id"
			if strings.Contains(err.Error(), "machine") {
				field = "machine_id"
			}
			return &apiError{Status: http.StatusUnprocessableEntity, Field: field, Message: field + ": " + err.Error()}
		}
		return err
	}
	s.changes.bump()
	writeJSON(w, status, d)
	return nil
}

func (s *Server) getDeployment(w http.ResponseWriter, r *http.Request) error {
	d, err := s.st.GetDeployment(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, d)
	return nil
}

func (s *Server) deleteDeployment(w http.ResponseWriter, r *http.Request) error {
	if err := s.st.DeleteDeployment(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	s.changes.bump()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- images and blobs ----

func (s *Server) listImages(w http.ResponseWriter, r *http.Request) error {
	ims, err := s.st.ListImages(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, ims)
	return nil
}

func (s *Server) getImage(w http.ResponseWriter, r *http.Request) error {
	im, err := s.st.GetImage(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, 200, im)
	return nil
}

func validImageHeader(im *model.Image) error {
	if !model.ValidID(im.ID) {
		return badField("id", "1-64 letters, digits, '-', '_' or '.'")
	}
	if !im.Arch.Valid() {
		return badField("arch", "want x86, x64 or arm64")
	}
	return nil
}

func (s *Server) createImage(w http.ResponseWriter, r *http.Request) error {
	var im model.Image
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &im); err != nil {
		return err
	}
	if err := validImageHeader(&im); err != nil {
		return err
	}
	if len(im.Files) == 0 {
		return badField("files", "at least one file")
	}
	seen := map[string]bool{}
	for i := range im.Files {
		f := &im.Files[i]
		if !model.ValidID(f.Name) || seen[f.Name] {
			return badField(fmt.Sprintf("files[%d].name", i), "unique name of letters, digits, '-', '_' or '.'")
		}
		seen[f.Name] = true
		sum, err := model.NormalizeSHA256(f.SHA256)
		if err != nil {
			return badField(fmt.Sprintf("files[%d].sha256", i), "%v", err)
		}
		size, ok := s.blobs.Stat(sum)
		if !ok {
			return &apiError{Status: http.StatusUnprocessableEntity, Field: fmt.Sprintf("files[%d].sha256", i), Message: fmt.Sprintf("files[%d].sha256: blob %s not uploaded (PUT /api/v1/blobs/%s first)", i, sum, sum)}
		}
		if f.Size != 0 && f.Size != size {
			return badField(fmt.Sprintf("files[%d].size", i), "blob has %d bytes, not %d", size, f.Size)
		}
		f.SHA256, f.Size = sum, size
	}
	im.CreatedAt = s.now().UTC()
	if err := s.st.UpsertImage(r.Context(), im); err != nil {
		return err
	}
	s.changes.bump()
	writeJSON(w, http.StatusCreated, im)
	return nil
}

// RegisterRequest registers an image from a directory on Central's host.
type RegisterRequest struct {
	ID          string     `json:"id"`
	Arch        model.Arch `json:"arch"`
	Description string     `json:"description"`
	Dir         string     `json:"dir"`
}

// RegisterDir hashes every regular file in dir into the blob store and
// records the image.
func (s *Server) RegisterDir(r *http.Request, req RegisterRequest) (model.Image, error) {
	im := model.Image{ID: req.ID, Arch: req.Arch, Description: req.Description}
	if err := validImageHeader(&im); err != nil {
		return im, err
	}
	if !filepath.IsAbs(req.Dir) {
		return im, badField("dir", "must be an absolute path")
	}
	entries, err := os.ReadDir(req.Dir)
	if err != nil {
		return im, badField("dir", "%v", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !model.ValidID(e.Name()) {
			continue
		}
		f, err := os.Open(filepath.Join(req.Dir, e.Name()))
		if err != nil {
			return im, fmt.Errorf("register %s: %w", e.Name(), err)
		}
		sum, size, err := s.blobs.Put(f, "")
		f.Close()
		if err != nil {
			return im, fmt.Errorf("register %s: %w", e.Name(), err)
		}
		im.Files = append(im.Files, model.ImageFile{Name: e.Name(), Size: size, SHA256: sum})
	}
	if len(im.Files) == 0 {
		return im, badField("dir", "no regular files")
	}
	im.CreatedAt = s.now().UTC()
	if err := s.st.UpsertImage(r.Context(), im); err != nil {
		return im, err
	}
	s.changes.bump()
	return im, nil
}

func (s *Server) registerImage(w http.ResponseWriter, r *http.Request) error {
	var req RegisterRequest
	if err := decodeJSON(w, r, s.opts.MaxJSONBytes, &req); err != nil {
		return err
	}
	im, err := s.RegisterDir(r, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, im)
	return nil
}

func (s *Server) deleteImage(w http.ResponseWriter, r *http.Request) error {
	if err := s.st.DeleteImage(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	s.changes.bump()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// BlobResult is the answer of a blob upload.
type BlobResult struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func (s *Server) uploadBlob(w http.ResponseWriter, r *http.Request) error {
	sum, err := model.NormalizeSHA256(r.PathValue("sha256"))
	if err != nil {
		return badField("sha256", "%v", err)
	}
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxUploadBytes)
	got, size, err := s.blobs.Put(body, sum)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, BlobResult{SHA256: got, Size: size})
	return nil
}

func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request, sum string) error {
	f, err := s.blobs.Open(sum)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("ETag", `"`+sum+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Content-SHA256", sum)
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", fi.ModTime(), f)
	s.metrics.add(cw.n, "peerboot_central_blob_bytes_sent_total")
	return nil
}

type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (s *Server) downloadBlob(w http.ResponseWriter, r *http.Request) error {
	sum, err := model.NormalizeSHA256(r.PathValue("sha256"))
	if err != nil {
		return badField("sha256", "%v", err)
	}
	return s.serveBlob(w, r, sum)
}

func (s *Server) downloadImageFile(w http.ResponseWriter, r *http.Request) error {
	im, err := s.st.GetImage(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	for _, f := range im.Files {
		if f.Name == r.PathValue("name") {
			return s.serveBlob(w, r, f.SHA256)
		}
	}
	return errStatus(http.StatusNotFound, "image %s has no file %q", im.ID, r.PathValue("name"))
}

// ---- ignore list ----

func (s *Server) listIgnored(w http.ResponseWriter, r *http.Request) error {
	l, err := s.st.ListIgnoredMACs(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, 200, l)
	return nil
}

func (s *Server) setIgnored(w http.ResponseWriter, r *http.Request, on bool) error {
	mac, err := model.NormalizeMAC(r.PathValue("mac"))
	if err != nil {
		return badField("mac", "%v", err)
	}
	if err := s.st.SetIgnoredMAC(r.Context(), mac, on); err != nil {
		return err
	}
	s.changes.bump()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) putIgnored(w http.ResponseWriter, r *http.Request) error {
	return s.setIgnored(w, r, true)
}

func (s *Server) deleteIgnored(w http.ResponseWriter, r *http.Request) error {
	return s.setIgnored(w, r, false)
}
