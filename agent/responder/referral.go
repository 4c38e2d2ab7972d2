package responder

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	agentdecide "github.com/peerboot/peerboot/agent/decide"
	"github.com/peerboot/peerboot/central/api"
	cdecide "github.com/peerboot/peerboot/central/decide"
	"github.com/peerboot/peerboot/central/model"
	"github.com/peerboot/peerboot/pxe"
)

// Central is what the responder asks Central (central/client.Client).
type Central interface {
	Decide(ctx context.Context, req api.DecideRequest) (cdecide.Decision, error)
	Do(ctx context.Context, method, path string, in, out any) error
}

// Referrer is the referral-mode pxe.Decider.
type Referrer struct {
	Central Central
	// Timeout bounds each call to Central (default 1s).
	Timeout time.Duration
	// AgentTTL is how long Central's agent list is reused (default 5s);
	// agents not seen for Stale (default 45s) are not referred to.
	AgentTTL time.Duration
	Stale    time.Duration
	Log      *slog.Logger
	Now      func() time.Time

	mu      sync.Mutex
	agents  map[netip.Addr]agentList
	images  map[string]model.Image
	answers map[agentdecide.ClientKey]referral

	Referred, NoAgent, NotRelayed, NoBoot, Errors atomic.Uint64
}

type agentList struct {
	at     time.Time
	agents []model.Agent
}

type referral struct {
	d   pxe.Decision
	exp time.Time
}

func (r *Referrer) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Referrer) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return time.Second
}

// Decide implements pxe.Decider.
func (r *Referrer) Decide(ctx context.Context, c *pxe.Client) (pxe.Decision, error) {
	now := r.now()
	r.mu.Lock()
	if a, ok := r.answers[agentdecide.KeyOf(c)]; ok && now.Before(a.exp) {
		r.mu.Unlock()
		return a.d, nil // a retry, or the client's 4011 request to us
	}
	r.mu.Unlock()
	if c.Kind != pxe.MsgDiscover || !c.Relayed() {
		r.NotRelayed.Add(1)
		return pxe.Decision{Action: pxe.Ignore}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout())
	defer cancel()
	agents, err := r.agentsFor(ctx, c.GIAddr)
	if err != nil {
		r.Errors.Add(1)
		return pxe.Decision{}, err
	}
	if len(agents) == 0 {
		r.NoAgent.Add(1)
		return pxe.Decision{Action: pxe.Ignore}, nil
	}
	cd, err := r.Central.Decide(ctx, api.DecideRequest{
		MAC: agentdecide.MACString(c.MAC), Arch: strconv.Itoa(int(c.Arch)), Subnet: c.GIAddr.String(), GUID: agentdecide.GUIDString(c),
	})
	if err != nil {
		r.Errors.Add(1)
		return pxe.Decision{}, fmt.Errorf("central decide: %w", err)
	}
	if !cd.Boot {
		r.NoBoot.Add(1)
		return pxe.Decision{Action: pxe.Ignore}, nil
	}
	img, err := r.image(ctx, cd.ImageID)
	if err != nil {
		r.Errors.Add(1)
		return pxe.Decision{}, err
	}
	file := agentdecide.BootFile(img, c.Class, c.IPXE)
	if file == "" {
		return pxe.Decision{}, pxe.ErrNoBootFile
	}
	agent, addr := Pick(agents, c.MAC, cd.ImageID, c.GIAddr)
	if !addr.IsValid() {
		r.NoAgent.Add(1)
		return pxe.Decision{Action: pxe.Ignore}, nil
	}
	d := pxe.Decision{Action: pxe.Boot, BootFile: img.ID + "/" + file, Server: addr}
	r.mu.Lock()
	if r.answers == nil || len(r.answers) > 1<<16 {
		r.answers = map[agentdecide.ClientKey]referral{}
	}
	r.answers[agentdecide.KeyOf(c)] = referral{d: d, exp: now.Add(30 * time.Second)}
	r.mu.Unlock()
	r.Referred.Add(1)
	if r.Log != nil {
		r.Log.Info("referred client", "mac", agentdecide.MACString(c.MAC), "relay", c.GIAddr, "agent", agent.ID, "server", addr, "file", d.BootFile)
	}
	return d, nil
}

// agentsFor lists the live agents serving the relay's subnet.
func (r *Referrer) agentsFor(ctx context.Context, giaddr netip.Addr) ([]model.Agent, error) {
	now := r.now()
	ttl, stale := r.AgentTTL, r.Stale
	if ttl <= 0 {
		ttl = 5 * time.Second
	}
	if stale <= 0 {
		stale = 45 * time.Second
	}
	r.mu.Lock()
	l, ok := r.agents[giaddr]
	r.mu.Unlock()
	if !ok || now.Sub(l.at) > ttl {
		var list []model.Agent
		if err := r.Central.Do(ctx, "GET", "/api/v1/agents?subnet="+giaddr.String(), nil, &list); err != nil {
			if ok {
				list = l.agents // keep the last list while Central is away
			} else {
				return nil, fmt.Errorf("central agents for %s: %w", giaddr, err)
			}
		}
		l = agentList{at: now, agents: list}
		r.mu.Lock()
		if r.agents == nil {
			r.agents = map[netip.Addr]agentList{}
		}
		r.agents[giaddr] = l
		r.mu.Unlock()
	}
	var live []model.Agent
	for _, a := range l.agents {
		if a.Weight > 0 && now.Sub(a.LastSeen) <= stale {
			live = append(live, a)
		}
	}
	return live, nil
}

func (r *Referrer) image(ctx context.Context, id string) (model.Image, error) {
	r.mu.Lock()
	img, ok := r.images[id]
	r.mu.Unlock()
	if ok {
		return img, nil
	}
	if err := r.Central.Do(ctx, "GET", "/api/v1/images/"+id, nil, &img); err != nil {
		return img, fmt.Errorf("central image %s: %w", id, err)
	}
	r.mu.Lock()
	if r.images == nil {
		r.images = map[string]model.Image{}
	}
	r.images[id] = img
	r.mu.Unlock()
	return img, nil
}

// Pick chooses the agent for a client: weighted rendezvous hashing of the
// MAC over the agents, those holding the image first, and returns the
// agent's address on the relay's subnet.
func Pick(agents []model.Agent, mac [6]byte, image string, giaddr netip.Addr) (model.Agent, netip.Addr) {
	var best model.Agent
	bestScore, bestHolds := math.Inf(-1), false
	for _, a := range agents {
		addr := addressIn(a, giaddr)
		if !addr.IsValid() {
			continue
		}
		holds := false
		for _, id := range a.Images {
			if id == image {
				holds = true
			}
		}
		h := fnv.New64a()
		h.Write(mac[:])
		h.Write([]byte(a.ID))
		u := (float64(h.Sum64()>>11) + 0.5) / (1 << 53)
		score := -float64(a.Weight) / math.Log(u) / (1 + a.Load)
		if (holds && !bestHolds) || (holds == bestHolds && score > bestScore) {
			best, bestScore, bestHolds = a, score, holds
		}
	}
	if best.ID == "" {
		return best, netip.Addr{}
	}
	return best, addressIn(best, giaddr)
}

// addressIn returns the agent's address inside a subnet that contains
// giaddr (the first address when none matches a listed subnet).
func addressIn(a model.Agent, giaddr netip.Addr) netip.Addr {
	for _, sn := range a.Subnets {
		p, err := cdecide.ParseSubnet(sn)
		if err != nil || !p.Contains(giaddr) {
			continue
		}
		for _, s := range a.Addresses {
			if ip, err := netip.ParseAddr(s); err == nil && p.Contains(ip) {
				return ip
			}
		}
	}
	return netip.Addr{}
}
