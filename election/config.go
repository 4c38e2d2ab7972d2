package election

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults of Config.
const (
	DefaultPort              = 2012
	DefaultWeight            = 50
	DefaultElectionWait      = 200 * time.Millisecond
	DefaultReserve           = 30 * time.Second
	DefaultHeartbeatInterval = time.Second
	DefaultMaxClockSkew      = 10 * time.Second
	DefaultMaxMembers        = 1024
	DefaultMaxClients        = 1 << 16
	DefaultFailoverDepth     = 3
	// DefaultBoundaryGuard is Config.BoundaryGuard's default (at most a
	// quarter of the load epoch).
	DefaultBoundaryGuard = 500 * time.Millisecond
	// MissedHeartbeats is how many heartbeat intervals of silence remove an
	// agent from the view.
	MissedHeartbeats = 3
)

// Config configures an Elector. Zero fields take the defaults above.
type Config struct {
	// Agent is this agent's id: stable across restarts so clients keep
	// their agent (derive it from a MAC address or a stored random value).
	// It must not be 0.
	Agent AgentID
	// Subnet identifies the subnet; messages for another subnet are
	// dropped. SubnetID derives it from the prefix.
	Subnet uint64
	// Key is the site key (at least 16 bytes) that authenticates messages.
	Key []byte
	// Weight is ElectionWeight, 0-99; 0 never answers. nil means DefaultWeight.
	Weight *uint8
	// ElectionWait is ElectionWaitSecs: how long rank k+1 waits for the
	// claim of rank k before answering itself.
	ElectionWait time.Duration
	// Reserve is ReserveSecs: how long a claim pins a client to its agent.
	Reserve time.Duration
	// HeartbeatInterval is the membership announcement period.
	HeartbeatInterval time.Duration
	// FailoverDepth is how many agents after the first may answer a
	// request by timeout (rank k waits k x ElectionWait). Deeper ranks
	// defer; should all of them be dead, they leave the view within
	// MissedHeartbeats intervals and the client's next retry is answered.
	// Bounding it keeps lone misses of a claim (message loss) from making
	// a second responder somewhere among hundreds of agents.
	FailoverDepth int
	// LoadEpoch is how often announced weights and loads take effect: a
	// change is announced during one epoch and used by every agent from
	// the next boundary on (multiples of LoadEpoch since the Unix epoch),
	// so a lost heartbeat cannot make two agents rank differently. Zero
	// means 10 heartbeat intervals; it must be at least 4. A new agent
	// answers from its second boundary on.
	LoadEpoch time.Duration
	// BoundaryGuard is the window on each side of a load-epoch boundary
	// in which a request is ranked with the inputs of both sides: when the
	// two put different agents first, the old first answers at once only
	// before boundary + BoundaryGuard/2 and the new first waits one
	// ElectionWait until boundary + BoundaryGuard, so agents whose clocks
	// differ by less than BoundaryGuard/2 never both answer at once. Zero
	// means DefaultBoundaryGuard, capped at LoadEpoch/4; it must not
	// exceed LoadEpoch/4.
	BoundaryGuard time.Duration
	// NoBoundaryGuard turns the guard off: every agent switches rankings
	// at the boundary by its own clock (for comparison and diagnosis).
	NoBoundaryGuard bool
	// MaxClockSkew bounds |sender clock - our clock|; older or newer
	// messages are dropped as stale.
	MaxClockSkew time.Duration
	// MaxMembers bounds the view (and the replay state kept per sender).
	MaxMembers int
	// MaxClients bounds the per-client claim table.
	MaxClients int
	// SingleClaim sends each claim once instead of twice (the second copy,
	// ElectionWait/2 later, covers the loss of the first).
	SingleClaim bool
	// NoBalance turns balancing off: the agent always announces a balance
	// of 1, so its share follows the hash (and weight and load) alone and
	// drifts with the luck of the draw. For comparison and diagnosis.
	NoBalance bool
	// Addr is announced in heartbeats (informational, e.g. for logs).
	Addr netip.Addr
	// OnHandoff, if set, is called (without locks held) when another agent
	// hands a client to this one, with Central's answer it carried.
	OnHandoff func(client ClientKey, image uint64, payload []byte)
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
}

// SubnetID derives a subnet id from the subnet's prefix (FNV-1a of its
// canonical text), so agents configured alike agree without coordination.
func SubnetID(p netip.Prefix) uint64 {
	s := p.Masked().String()
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func (c Config) withDefaults() (Config, error) {
	if c.Agent == 0 {
		return c, errors.New("election: Config.Agent must not be 0")
	}
	if len(c.Key) < 16 {
		return c, fmt.Errorf("election: site key is %d bytes, need at least 16", len(c.Key))
	}
	if c.Weight == nil {
		w := uint8(DefaultWeight)
		c.Weight = &w
	} else if *c.Weight > 99 {
		return c, fmt.Errorf("election: weight %d is above 99", *c.Weight)
	}
	orDefault(&c.ElectionWait, DefaultElectionWait)
	orDefault(&c.Reserve, DefaultReserve)
	orDefault(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	if c.HeartbeatInterval < 50*time.Millisecond || c.HeartbeatInterval > time.Minute {
		return c, fmt.Errorf("election: heartbeat interval %v outside 50ms..1m", c.HeartbeatInterval)
	}
	orDefault(&c.LoadEpoch, 10*c.HeartbeatInterval)
	if c.LoadEpoch < 4*c.HeartbeatInterval || c.LoadEpoch > time.Hour {
		return c, fmt.Errorf("election: load epoch %v must lie between 4 heartbeat intervals (%v) and 1h", c.LoadEpoch, 4*c.HeartbeatInterval)
	}
	if c.BoundaryGuard <= 0 {
		c.BoundaryGuard = min(DefaultBoundaryGuard, c.LoadEpoch/4)
	} else if c.BoundaryGuard > c.LoadEpoch/4 {
		return c, fmt.Errorf("election: boundary guard %v exceeds a quarter of the load epoch (%v)", c.BoundaryGuard, c.LoadEpoch/4)
	}
	orDefault(&c.FailoverDepth, DefaultFailoverDepth)
	orDefault(&c.MaxClockSkew, DefaultMaxClockSkew)
	orDefault(&c.MaxMembers, DefaultMaxMembers)
	orDefault(&c.MaxClients, DefaultMaxClients)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// orDefault sets *v to def when it is zero or negative.
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
