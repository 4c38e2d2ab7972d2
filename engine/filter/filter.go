package filter

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Mode is the kind of filter attached.
type Mode uint8

const (
	// ModeEBPF is the counting eBPF socket filter.
	ModeEBPF Mode = iota + 1
	// ModeClassic is the classic BPF fallback (no counters).
	ModeClassic
)

func (m Mode) String() string {
	switch m {
	case ModeEBPF:
		return "ebpf"
	case ModeClassic:
		return "classic-bpf"
	}
	return "none"
}

// Reason is why the filter passed or dropped a packet (an index into the
// reasons map).
type Reason uint32

const (
	Passed    Reason = iota // IPv4/UDP to a served port
	OtherPort               // IPv4/UDP to a port not served
	NotUDP                  // IPv4 but not UDP (TCP, ICMP, ...)
	Fragment                // an IPv4 fragment
	NotIPv4                 // not IPv4 at all
	Outgoing                // a frame this host sent
	numReasons
)

// Totals are the eBPF filter's counters by reason.
type Totals [numReasons]uint64

// Dropped is the number of packets the filter kept from user space.
func (t Totals) Dropped() uint64 {
	var n uint64
	for r := OtherPort; r < numReasons; r++ {
		n += t[r]
	}
	return n
}

// PortCounters are the eBPF filter's counters for one UDP destination port.
type PortCounters struct {
	Served  bool
	Passed  uint64
	Dropped uint64
}

// portValue is the value of the ports map: one per destination port.
type portValue struct {
	Served, Passed, Dropped uint64
}

// Options tune New.
type Options struct {
	// ForceClassic skips eBPF and uses the classic BPF filter, as if the
	// kernel had refused eBPF.
	ForceClassic bool
}

// Filter is a socket filter passing IPv4/UDP to a set of ports.
type Filter struct {
	ports []uint16

	mu       sync.Mutex
	mode     Mode
	prog     *ebpf.Program
	portsMap *ebpf.Map
	reasons  *ebpf.Map
	// EBPFError is why eBPF is not in use, when it is not.
	ebpfErr error
}

// New prepares a filter for ports. It loads the eBPF program unless
// opts.ForceClassic is set or the kernel refuses it, in which case the
// classic program is used.
func New(ports []uint16, opts Options) (*Filter, error) {
	if len(ports) == 0 {
		return nil, errors.New("filter: no ports to serve")
	}
	ps := slices.Clone(ports)
	slices.Sort(ps)
	ps = slices.Compact(ps)
	f := &Filter{ports: ps, mode: ModeClassic}
	if _, err := Classic(ps); err != nil {
		return nil, err
	}
	if opts.ForceClassic {
		f.ebpfErr = errors.New("filter: eBPF disabled by option")
		return f, nil
	}
	if err := f.loadEBPF(); err != nil {
		f.ebpfErr = err
		return f, nil
	}
	f.mode = ModeEBPF
	return f, nil
}

// Mode says which filter is in use (after Attach: which one was attached).
func (f *Filter) Mode() Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}

// EBPFError says why the eBPF filter is not in use (nil when it is).
func (f *Filter) EBPFError() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == ModeEBPF {
		return nil
	}
	return f.ebpfErr
}

// Ports returns the served ports, sorted.
func (f *Filter) Ports() []uint16 { return slices.Clone(f.ports) }

// Attach attaches the filter to socket fd (do it before bind). If the
// kernel refuses the eBPF program, the classic program is attached
// instead and Mode reports ModeClassic.
func (f *Filter) Attach(fd int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == ModeEBPF {
		err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, f.prog.FD())
		if err == nil {
			return nil
		}
		f.ebpfErr = fmt.Errorf("filter: SO_ATTACH_BPF: %w", err)
		f.closeEBPF()
		f.mode = ModeClassic
	}
	raw, err := Classic(f.ports)
	if err != nil {
		return err
	}
	sf := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		sf[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	prog := unix.SockFprog{Len: uint16(len(sf)), Filter: &sf[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fmt.Errorf("filter: SO_ATTACH_FILTER: %w", err)
	}
	return nil
}

// Port returns the counters of one destination port (eBPF only).
func (f *Filter) Port(port uint16) (PortCounters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode != ModeEBPF || f.portsMap == nil {
		return PortCounters{}, errNoCounters
	}
	var v portValue
	if err := f.portsMap.Lookup(uint32(port), &v); err != nil {
		return PortCounters{}, fmt.Errorf("filter: reading port %d: %w", port, err)
	}
	return PortCounters{Served: v.Served != 0, Passed: v.Passed, Dropped: v.Dropped}, nil
}

var errNoCounters = errors.New("filter: no counters (classic filter, or closed)")

// Totals returns the counters by reason (eBPF only).
func (f *Filter) Totals() (Totals, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var t Totals
	if f.mode != ModeEBPF || f.reasons == nil {
		return t, errNoCounters
	}
	for r := range numReasons {
		if err := f.reasons.Lookup(uint32(r), &t[r]); err != nil {
			return t, fmt.Errorf("filter: reading reason %d: %w", r, err)
		}
	}
	return t, nil
}

// Filtered is the number of packets dropped by the filter (0 with the
// classic filter, which cannot count).
func (f *Filter) Filtered() uint64 {
	t, err := f.Totals()
	if err != nil {
		return 0
	}
	return t.Dropped()
}

// Close releases the eBPF program and maps. A filter already attached to
// a socket stays in force until that socket is closed.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closeEBPF()
	return nil
}

func (f *Filter) closeEBPF() {
	for _, c := range []interface{ Close() error }{f.prog, f.portsMap, f.reasons} {
		if c != nil && !isNilCloser(c) {
			_ = c.Close()
		}
	}
	f.prog, f.portsMap, f.reasons = nil, nil, nil
}

func isNilCloser(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case *ebpf.Program:
		return v == nil
	case *ebpf.Map:
		return v == nil
	}
	return false
}

func (f *Filter) loadEBPF() error {
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()
	var err error
	f.portsMap, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "pb_ports", Type: ebpf.Array, KeySize: 4, ValueSize: 24, MaxEntries: 65536,
	})
	if err != nil {
		return fmt.Errorf("filter: creating ports map: %w", err)
	}
	f.reasons, err = ebpf.NewMap(&ebpf.MapSpec{
		Name: "pb_reasons", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: uint32(numReasons),
	})
	if err != nil {
		f.closeEBPF()
		return fmt.Errorf("filter: creating reasons map: %w", err)
	}
	for _, p := range f.ports {
		if err := f.portsMap.Put(uint32(p), portValue{Served: 1}); err != nil {
			f.closeEBPF()
			return fmt.Errorf("filter: marking port %d: %w", p, err)
		}
	}
	f.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "pb_udp_ports",
		Type:         ebpf.SocketFilter,
		License:      "GPL",
		Instructions: program(f.portsMap.FD(), f.reasons.FD()),
	})
	if err != nil {
		f.closeEBPF()
		return fmt.Errorf("filter: loading eBPF program: %w", err)
	}
	return nil
}

// Offsets in the frame (Ethernet II, as an AF_PACKET SOCK_RAW socket sees
// it) and in struct __sk_buff.
const (
	offEtherType   = 12
	offIPv4        = 14
	offIPFlagsFrag = offIPv4 + 6
	offIPProto     = offIPv4 + 9
	offUDPDstPort  = 2  // in the UDP header, after the IPv4 header
	skbPktType     = 4  // offsetof(struct __sk_buff, pkt_type)
	packetOutgoing = 4  // PACKET_OUTGOING
	keepAll        = -1 // socket filter verdict: keep the whole packet
)

// program is the eBPF socket filter. R6 holds the context (needed by the
// LD_ABS/LD_IND packet loads), R7 the IPv4 header length, R8 the port.
func program(portsFD, reasonsFD int) asm.Instructions {
	ins := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R0, asm.R6, skbPktType, asm.Word),
		asm.JEq.Imm(asm.R0, packetOutgoing, "outgoing"),
		asm.LoadAbs(offEtherType, asm.Half),
		asm.JNE.Imm(asm.R0, 0x0800, "not_ipv4"),
		asm.LoadAbs(offIPProto, asm.Byte),
		asm.JNE.Imm(asm.R0, unix.IPPROTO_UDP, "not_udp"),
		asm.LoadAbs(offIPFlagsFrag, asm.Half),
		asm.JSet.Imm(asm.R0, 0x3fff, "fragment"), // MF or an offset
		asm.LoadAbs(offIPv4, asm.Byte),
		asm.And.Imm(asm.R0, 0x0f),
		asm.LSh.Imm(asm.R0, 2),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.LoadInd(asm.R0, asm.R7, offUDPDstPort+offIPv4, asm.Half),
		asm.Mov.Reg(asm.R8, asm.R0),
		// value = ports[port]
		asm.StoreMem(asm.RFP, -4, asm.R8, asm.Word),
		asm.LoadMapPtr(asm.R1, portsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "other_port"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.JEq.Imm(asm.R1, 0, "port_drop"),
		asm.Mov.Imm(asm.R1, 1),
		xadd(asm.R0, asm.R1, 8), // value.Passed++
		asm.Ja.Label("passed"),
		asm.Mov.Imm(asm.R1, 1).WithSymbol("port_drop"), // value.Dropped++
		xadd(asm.R0, asm.R1, 16),
		asm.Ja.Label("other_port"),
	}
	ins = append(ins, verdict("passed", Passed, reasonsFD, keepAll)...)
	ins = append(ins, verdict("other_port", OtherPort, reasonsFD, 0)...)
	ins = append(ins, verdict("not_udp", NotUDP, reasonsFD, 0)...)
	ins = append(ins, verdict("fragment", Fragment, reasonsFD, 0)...)
	ins = append(ins, verdict("not_ipv4", NotIPv4, reasonsFD, 0)...)
	ins = append(ins, verdict("outgoing", Outgoing, reasonsFD, 0)...)
	return ins
}

// xadd is an atomic 64-bit add of src to *(dst + off).
func xadd(dst, src asm.Register, off int16) asm.Instruction {
	i := asm.StoreXAdd(dst, src, asm.DWord)
	i.Offset = off
	return i
}

// verdict counts reason r and returns keep, starting at label.
func verdict(label string, r Reason, reasonsFD int, keep int32) asm.Instructions {
	done := label + "_done"
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -8, int64(r), asm.Word).WithSymbol(label),
		asm.LoadMapPtr(asm.R1, reasonsFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.Mov.Imm(asm.R1, 1),
		xadd(asm.R0, asm.R1, 0),
		asm.Mov.Imm(asm.R0, keep).WithSymbol(done),
		asm.Return(),
	}
}

// Classic assembles the classic BPF filter with the same verdicts as the
// eBPF one, without counters.
func Classic(ports []uint16) ([]bpf.RawInstruction, error) {
	if len(ports) == 0 || len(ports) > 200 {
		return nil, fmt.Errorf("filter: %d ports, want 1 to 200", len(ports))
	}
	n := len(ports)
	// Layout: 0..10 header checks, then one JumpIf per port, then drop,
	// then accept. Skips count instructions after the jump.
	prog := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: packetOutgoing, SkipTrue: 0}, // -> drop (patched)
		bpf.LoadAbsolute{Off: offEtherType, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 0},
		bpf.LoadAbsolute{Off: offIPProto, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 0},
		bpf.LoadAbsolute{Off: offIPFlagsFrag, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x3fff, SkipTrue: 0},
		bpf.LoadMemShift{Off: offIPv4},
		bpf.LoadIndirect{Off: offIPv4 + offUDPDstPort, Size: 2},
	}
	for _, p := range ports {
		prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(p)})
	}
	drop := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0}, bpf.RetConstant{Val: 0x40000})
	accept := drop + 1
	for i, ins := range prog {
		j, ok := ins.(bpf.JumpIf)
		if !ok {
			continue
		}
		if i < drop-n {
			j.SkipTrue = uint8(drop - i - 1)
		} else {
			j.SkipTrue = uint8(accept - i - 1)
		}
		prog[i] = j
	}
	return bpf.Assemble(prog)
}
