package decide

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peerboot/peerboot/central/api"
	"github.com/peerboot/peerboot/central/client"
	cdecide "github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/election"
	"github.com/peerboot/peerboot/pxe"
)

// Central answers boot decisions (central/client.Client).
type Central interface {
	Decide(ctx context.Context, req api.DecideRequest) (cdecide.Decision, error)
}

// Election picks the agent that answers a client (election.Elector).
type Election interface {
	Decide(ctx context.Context, client election.ClientKey, needImage string) election.Decision
	HandOff(ctx context.Context, client election.ClientKey, image string, payload []byte) election.Decision
}

// Images is the local image cache.
type Images interface {
	Image(id string) (model.Image, bool)
	Has(id string) bool
}

// Config configures a Decider.
type Config struct {
	Central  Central
	Election Election // nil: this agent answers every client
	Images   Images
	// AgentID names this agent in events.
	AgentID string
	// Subnet is the agent's address on the served subnet (sent to Central).
	Subnet netip.Addr
	// Timeout bounds one Central decision; MaxStale bounds the age of the
	// cached decision set used when Central does not answer.
	Timeout  time.Duration
	MaxStale time.Duration
	// IgnoreMACs are never answered.
	IgnoreMACs [][6]byte
	// Record receives one event per decision (the spool). May be nil.
	Record func(model.Event)
	Log    *slog.Logger
	// Now is the clock (tests); nil = time.Now.
	Now func() time.Time
}

// Decider implements pxe.Decider.
type Decider struct {
	cfg Config

	mu       sync.Mutex
	set      *api.DecisionSet
	ix       *cdecide.Index
	setAt    time.Time           // when Central last confirmed the set
	offline  []model.Consumption // required deployments handed out while Central was away
	answers  map[ClientKey]answer
	counters Counters
}

// ClientKey identifies one boot stage of a client for remembered answers:
// the firmware's PXE stack and the iPXE it loads next ask with the same MAC
// but need different files (the NBP, then the iPXE script).
type ClientKey struct {
	MAC  [6]byte
	IPXE bool
}

// KeyOf returns the remembered-answer key of a client.
func KeyOf(c *pxe.Client) ClientKey { return ClientKey{MAC: c.MAC, IPXE: c.IPXE} }

// answer is what this agent last told a client, so its boot-server
// request on 4011 and its retries get the same answer.
type answer struct {
	d   pxe.Decision
	exp time.Time
}

// Counters count decisions by how they were made.
type Counters struct {
	FromCentral, FromCache, FromHandoff atomic.Uint64
	Deferred, HandedOff, NoBoot         atomic.Uint64
	Stale, NoImage, Errors              atomic.Uint64
	Failovers                           atomic.Uint64
}

// New returns a Decider.
func New(cfg Config) *Decider {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 750 * time.Millisecond
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = 24 * time.Hour
	}
	return &Decider{cfg: cfg, answers: map[ClientKey]answer{}}
}

// Counters returns the decision counters.
func (d *Decider) Counters() *Counters { return &d.counters }

// SetDecisionSet installs the decision set Central sent (or that was read
// back from disk), confirmed current at time at.
func (d *Decider) SetDecisionSet(set *api.DecisionSet, at time.Time) {
	ix := cdecide.NewIndex(set.Config)
	d.mu.Lock()
	if d.set == nil || d.set.Version != set.Version {
		d.offline = nil // Central's consumptions now include what we reported
		// A new set may change what a client boots (an administrator
		// cleared a required deployment, say): forget remembered answers.
		clear(d.answers)
	}
	d.set, d.ix, d.setAt = set, ix, at
	d.mu.Unlock()
}

// Confirm records that Central said the cached set is still current.
func (d *Decider) Confirm(at time.Time) {
	d.mu.Lock()
	d.setAt = at
	d.mu.Unlock()
}

// SetAge is how old the cached decision set is (-1 when there is none).
func (d *Decider) SetAge() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.set == nil {
		return -1
	}
	return d.cfg.Now().Sub(d.setAt)
}

var errStale = errors.New("central unreachable and no fresh cached decision set")

// Decide implements pxe.Decider.
func (d *Decider) Decide(ctx context.Context, c *pxe.Client) (pxe.Decision, error) {
	for _, m := range d.cfg.IgnoreMACs {
		if m == c.MAC {
			return pxe.Decision{Action: pxe.Ignore}, nil
		}
	}
	now := d.cfg.Now()
	if c.Kind == pxe.MsgRequest {
		// The client picked this agent from its offer: no election.
		if a, ok := d.recent(KeyOf(c), now); ok {
			return a, nil
		}
		cd, _, err := d.central(ctx, c, true)
		if err != nil {
			return pxe.Decision{}, err
		}
		return d.answerFor(c, cd, now, false)
	}
	key := election.ClientKey{MAC: c.MAC, HasGUID: c.HasGUID, GUID: c.GUID}
	var ed election.Decision
	if d.cfg.Election != nil {
		ed = d.cfg.Election.Decide(ctx, key, "")
		if ed.Action != election.Serve {
			d.counters.Deferred.Add(1)
			return pxe.Decision{Action: pxe.Ignore}, nil
		}
	}
	if a, ok := d.recent(KeyOf(c), now); ok {
		return a, nil // a retry of a client this agent answered
	}
	if ed.Rank > 0 {
		d.counters.Failovers.Add(1)
		d.recordElection(c, cdecide.Decision{}, "failover", fmt.Sprintf("answered at rank %d after the agents above stayed silent", ed.Rank))
	}
	var (
		cd     cdecide.Decision
		source string
		err    error
	)
	if ed.Payload != nil {
		if err := json.Unmarshal(ed.Payload, &cd); err != nil {
			d.counters.Errors.Add(1)
			return pxe.Decision{}, fmt.Errorf("handoff payload: %w", err)
		}
		source = "handoff"
		d.counters.FromHandoff.Add(1)
	} else {
		cd, source, err = d.central(ctx, c, false)
		if err != nil {
			d.record(c, cd, "error", source, err.Error())
			return pxe.Decision{}, err
		}
	}
	if !cd.Boot {
		d.counters.NoBoot.Add(1)
		d.record(c, cd, "none", source, cd.Reason)
		return d.remember(KeyOf(c), pxe.Decision{Action: pxe.Ignore}, now), nil
	}
	if !d.cfg.Images.Has(cd.ImageID) && d.cfg.Election != nil && ed.Payload == nil {
		payload, _ := json.Marshal(cd)
		h := d.cfg.Election.HandOff(ctx, key, cd.ImageID, payload)
		if h.Action == election.HandOff {
			d.counters.HandedOff.Add(1)
			d.record(c, cd, "handoff", source, fmt.Sprintf("agent %d holds the image", h.Agent))
			d.recordElection(c, cd, "handoff", fmt.Sprintf("to agent %016x", uint64(h.Agent)))
			return pxe.Decision{Action: pxe.Ignore}, nil
		}
	}
	return d.answerFor(c, cd, now, true, source)
}

// answerFor turns Central's decision into the PXE answer.
func (d *Decider) answerFor(c *pxe.Client, cd cdecide.Decision, now time.Time, report bool, source ...string) (pxe.Decision, error) {
	src := ""
	if len(source) > 0 {
		src = source[0]
	}
	if !cd.Boot {
		return pxe.Decision{Action: pxe.Ignore}, nil
	}
	img, ok := d.cfg.Images.Image(cd.ImageID)
	if !ok || !d.cfg.Images.Has(cd.ImageID) {
		d.counters.NoImage.Add(1)
		if report {
			d.record(c, cd, "no-image", src, "image not in the local cache")
		}
		return pxe.Decision{Action: pxe.Ignore}, nil
	}
	file := BootFile(img, c.Class, c.IPXE)
	if file == "" {
		d.counters.NoImage.Add(1)
		if report {
			d.record(c, cd, "no-image", src, "image has no boot file for "+c.Class.String())
		}
		return pxe.Decision{}, pxe.ErrNoBootFile
	}
	out := pxe.Decision{Action: pxe.Boot, BootFile: img.ID + "/" + file}
	if report {
		d.record(c, cd, "boot", src, out.BootFile)
	}
	return d.remember(KeyOf(c), out, now), nil
}

func (d *Decider) recent(k ClientKey, now time.Time) (pxe.Decision, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	a, ok := d.answers[k]
	if !ok || now.After(a.exp) {
		return pxe.Decision{}, false
	}
	return a.d, true
}

// answerTTL keeps one boot's retries and its 4011 request on one answer.
const answerTTL = 30 * time.Second

func (d *Decider) remember(k ClientKey, out pxe.Decision, now time.Time) pxe.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.answers) >= 1<<16 {
		for k, a := range d.answers {
			if now.After(a.exp) {
				delete(d.answers, k)
			}
		}
		if len(d.answers) >= 1<<16 {
			d.answers = map[ClientKey]answer{}
		}
	}
	d.answers[k] = answer{d: out, exp: now.Add(answerTTL)}
	return out
}

// MACString formats a MAC the way Central normalises it.
func MACString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// GUIDString returns the client's usable SMBIOS GUID in Central's form,
// or "" when it sent none (or an all-zero / all-FF one).
func GUIDString(c *pxe.Client) string {
	if !c.HasGUID {
		return ""
	}
	g := c.GUID
	s := fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
	if n, usable, err := model.NormalizeGUID(s); err == nil && usable {
		return n
	}
	return ""
}

// central asks Central, falling back to the cached decision set.
func (d *Decider) central(ctx context.Context, c *pxe.Client, peek bool) (cdecide.Decision, string, error) {
	req := api.DecideRequest{MAC: MACString(c.MAC), GUID: GUIDString(c), Arch: strconv.Itoa(int(c.Arch)), Peek: peek}
	if d.cfg.Subnet.IsValid() {
		req.Subnet = d.cfg.Subnet.String()
	}
	if c.GIAddr.IsValid() {
		req.Subnet = c.GIAddr.String()
	}
	if d.cfg.Central != nil {
		cctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
		cd, err := d.cfg.Central.Decide(cctx, req)
		cancel()
		if err == nil {
			d.counters.FromCentral.Add(1)
			return cd, "central", nil
		}
		if isClientError(err) {
			d.counters.Errors.Add(1)
			return cd, "central", fmt.Errorf("central refused the decision: %w", err)
		}
		d.cfg.Log.Debug("central unreachable, deciding from the cached set", "err", err)
	}
	cd, err := d.local(req, peek)
	if err != nil {
		return cd, "cache", err
	}
	d.counters.FromCache.Add(1)
	return cd, "cache", nil
}

// isClientError reports a 4xx answer from Central (asking again elsewhere
// would not help).
func isClientError(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status >= 400 && ce.Status < 500 && ce.Status != 408 && ce.Status != 429
}

// local applies Central's rules to the cached decision set.
func (d *Decider) local(req api.DecideRequest, peek bool) (cdecide.Decision, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.set == nil || now.Sub(d.setAt) > d.cfg.MaxStale {
		d.counters.Stale.Add(1)
		return cdecide.Decision{}, errStale
	}
	arch, err := cdecide.ParseClientArch(req.Arch)
	if err != nil {
		return cdecide.Decision{}, err
	}
	r := cdecide.Request{MAC: req.MAC, GUID: req.GUID, Arch: arch, Now: now}
	if a, err := netip.ParseAddr(req.Subnet); err == nil {
		r.Subnet = a
	}
	ck, _ := d.ix.ClientKey(r.MAC, r.GUID)
	consumed := map[string]time.Time{}
	for _, list := range [][]model.Consumption{d.set.Consumptions, d.offline} {
		for _, c := range list {
			if c.ClientKey == ck {
				consumed[c.DeploymentID] = c.At
			}
		}
	}
	window := time.Duration(d.set.RequiredRepeatWindow * float64(time.Second))
	cd := cdecide.Decide(d.ix, r, consumed, window)
	if cd.Boot && cd.Required && !cd.Repeat && !peek {
		d.offline = append(d.offline, model.Consumption{DeploymentID: cd.DeploymentID, ClientKey: cd.ClientKey, At: now})
	}
	return cd, nil
}

func (d *Decider) record(c *pxe.Client, cd cdecide.Decision, action, source, note string) {
	d.recordType(model.EventPXEDecision, c, cd, action, source, note)
}

// recordElection reports an election outcome worth keeping: a failover
// (this agent answered after higher ranks stayed silent) or a handoff.
func (d *Decider) recordElection(c *pxe.Client, cd cdecide.Decision, action, note string) {
	d.recordType(model.EventElection, c, cd, action, "election", note)
}

func (d *Decider) recordType(typ string, c *pxe.Client, cd cdecide.Decision, action, source, note string) {
	if d.cfg.Record == nil {
		return
	}
	detail, _ := json.Marshal(map[string]string{"action": action, "source": source, "note": note, "arch": c.Class.String()})
	ev := model.Event{
		AgentID: d.cfg.AgentID, Time: d.cfg.Now().UTC(), Type: typ,
		MAC: MACString(c.MAC), GUID: GUIDString(c), ImageID: cd.ImageID, DeploymentID: cd.DeploymentID,
		Required: cd.Required, Detail: detail,
	}
	if d.cfg.Subnet.IsValid() {
		ev.Subnet = d.cfg.Subnet.String()
	}
	d.cfg.Record(ev)
}

// BootFile picks the file of an image a client boots. An iPXE client (the
// boot program already loaded) gets the image's iPXE script (*.ipxe) when
// there is one, so chainloading does not loop; otherwise, and for every
// other client, by class: UEFI classes take the first .efi file (one named
// boot* first), BIOS takes the first PXE loader (.kpxe, .pxe, .0, .com,
// .n12), else the first file that is not .efi. HTTP-boot classes need a URL
// and get nothing from TFTP.
func BootFile(img model.Image, class pxe.Class, ipxe bool) string {
	if ipxe {
		for _, f := range img.Files {
			if strings.HasSuffix(strings.ToLower(f.Name), ".ipxe") {
				return f.Name
			}
		}
	}
	has := func(name string, sufs ...string) bool {
		n := strings.ToLower(name)
		for _, s := range sufs {
			if strings.HasSuffix(n, s) {
				return true
			}
		}
		return false
	}
	switch class {
	case pxe.ClassEFI32, pxe.ClassEFI64, pxe.ClassARM32, pxe.ClassARM64:
		first := ""
		for _, f := range img.Files {
			if has(f.Name, ".efi") {
				if strings.HasPrefix(strings.ToLower(f.Name), "boot") {
					return f.Name
				}
				if first == "" {
					first = f.Name
				}
			}
		}
		return first
	case pxe.ClassBIOS, pxe.ClassUnknown:
		for _, f := range img.Files {
			if has(f.Name, ".kpxe", ".pxe", ".0", ".com", ".n12") {
				return f.Name
			}
		}
		for _, f := range img.Files {
			if !has(f.Name, ".efi") {
				return f.Name
			}
		}
	}
	return ""
}
