package firmlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// DHCPMessage is one BOOTP/DHCP message seen in a capture.
type DHCPMessage struct {
	Time        time.Time
	Src, Dst    netip.AddrPort
	SrcMAC      string
	Op          uint8 // 1 request, 2 reply
	Type        layers.DHCPMsgType
	XID         uint32
	CHAddr      string
	CIAddr      netip.Addr
	SIAddr      netip.Addr
	GIAddr      netip.Addr
	File        string
	VendorClass string
	UserClass   string
	Arch        []uint16
	Options     []uint8 // option codes in wire order
}

// Transfer is one TFTP read request and what the server sent for it.
type Transfer struct {
	Client      netip.AddrPort
	Server      netip.Addr
	File        string
	Requested   map[string]string // options in the RRQ
	Accepted    map[string]string // options in the OACK
	ClientError string            // ERROR the client sent ("8 ..."), e.g. after a tsize probe
	Blocks      int               // distinct DATA blocks
	Bytes       int64             // payload bytes of the distinct blocks
	Sent        int               // DATA packets including retransmissions
	Complete    bool              // a short last block and every block before it
	Start, End  time.Time
}

// Report is what a capture shows.
type Report struct {
	DHCP      []DHCPMessage
	Transfers []*Transfer
	Frames    int
}

// Read analyses a pcap file made by a Capture.
func Read(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("firmlab: %w", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("firmlab: %s: %w", path, err)
	}
	rep := &Report{}
	open := map[netip.AddrPort]*transferState{}
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			break // a capture still being written may end inside a record
		}
		if err != nil {
			return rep, fmt.Errorf("firmlab: %s: %w", path, err)
		}
		rep.Frames++
		pkt := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy)
		ip4, _ := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip4 == nil || udp == nil {
			continue
		}
		srcIP, _ := netip.AddrFromSlice(ip4.SrcIP.To4())
		dstIP, _ := netip.AddrFromSlice(ip4.DstIP.To4())
		src := netip.AddrPortFrom(srcIP, uint16(udp.SrcPort))
		dst := netip.AddrPortFrom(dstIP, uint16(udp.DstPort))
		if m, ok := parseDHCP(udp.Payload); ok {
			m.Time, m.Src, m.Dst = ci.Timestamp, src, dst
			if eth, ok := pkt.Layer(layers.LayerTypeEthernet).(*layers.Ethernet); ok {
				m.SrcMAC = eth.SrcMAC.String()
			}
			rep.DHCP = append(rep.DHCP, m)
			continue
		}
		p := udp.Payload
		if len(p) < 4 {
			continue
		}
		op := binary.BigEndian.Uint16(p)
		switch {
		case op == 1 && dst.Port() == 69:
			file, opts := parseRequest(p[2:])
			t := &Transfer{Client: src, Server: dstIP, File: file, Requested: opts, Start: ci.Timestamp, End: ci.Timestamp}
			rep.Transfers = append(rep.Transfers, t)
			open[src] = &transferState{t: t, blocks: map[uint16]int{}, blksize: 512}
		case op == 6: // OACK server -> client
			if st := open[dst]; st != nil {
				st.t.Accepted = parseOptions(p[2:])
				if v, ok := st.t.Accepted["blksize"]; ok {
					if n, err := strconv.Atoi(v); err == nil {
						st.blksize = n
					}
				}
			}
		case op == 3: // DATA server -> client
			if st := open[dst]; st != nil {
				st.t.End = ci.Timestamp
				// A window sent with UDP GSO is captured on the bridge as
				// one datagram holding several DATA packets of blksize+4
				// bytes each (the last may be shorter).
				for seg := p; len(seg) >= 4; {
					n := min(len(seg), st.blksize+4)
					blk := binary.BigEndian.Uint16(seg[2:])
					st.t.Sent++
					if _, seen := st.blocks[blk]; !seen {
						st.blocks[blk] = n - 4
					}
					seg = seg[n:]
				}
			}
		case op == 5: // ERROR
			if st := open[src]; st != nil && st.t.Blocks == 0 {
				code := binary.BigEndian.Uint16(p[2:])
				st.t.ClientError = strings.TrimSpace(fmt.Sprintf("%d %s", code, cstr(p[4:])))
				st.t.End = ci.Timestamp
			}
		}
	}
	for _, st := range open {
		st.finish()
	}
	return rep, nil
}

type transferState struct {
	t       *Transfer
	blocks  map[uint16]int
	blksize int
}

func (st *transferState) finish() {
	t := st.t
	t.Blocks = len(st.blocks)
	nums := make([]int, 0, len(st.blocks))
	for b, n := range st.blocks {
		nums = append(nums, int(b))
		t.Bytes += int64(n)
	}
	sort.Ints(nums)
	if len(nums) == 0 {
		return
	}
	last := nums[len(nums)-1]
	t.Complete = nums[0] == 1 && last == len(nums) && st.blocks[uint16(last)] < st.blksize
}

func cstr(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func parseRequest(b []byte) (string, map[string]string) {
	parts := strings.Split(string(b), "\x00")
	if len(parts) < 2 {
		return "", nil
	}
	return parts[0], parseOptions([]byte(strings.Join(parts[2:], "\x00")))
}

func parseOptions(b []byte) map[string]string {
	parts := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	opts := map[string]string{}
	for i := 0; i+1 < len(parts); i += 2 {
		opts[strings.ToLower(parts[i])] = parts[i+1]
	}
	return opts
}

func parseDHCP(p []byte) (DHCPMessage, bool) {
	var m DHCPMessage
	if len(p) < 240 || p[236] != 99 || p[237] != 130 || p[238] != 83 || p[239] != 99 {
		return m, false
	}
	m.Op = p[0]
	m.XID = binary.BigEndian.Uint32(p[4:])
	m.CIAddr = netip.AddrFrom4([4]byte(p[12:16]))
	m.SIAddr = netip.AddrFrom4([4]byte(p[20:24]))
	m.GIAddr = netip.AddrFrom4([4]byte(p[24:28]))
	if p[2] == 6 {
		m.CHAddr = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", p[28], p[29], p[30], p[31], p[32], p[33])
	}
	m.File = cstr(p[108:236])
	for i := 240; i < len(p); {
		code := p[i]
		if code == 0 {
			i++
			continue
		}
		if code == 255 || i+1 >= len(p) {
			break
		}
		n := int(p[i+1])
		if i+2+n > len(p) {
			break
		}
		v := p[i+2 : i+2+n]
		m.Options = append(m.Options, code)
		switch code {
		case 53:
			if n == 1 {
				m.Type = layers.DHCPMsgType(v[0])
			}
		case 60:
			m.VendorClass = string(v)
		case 77:
			m.UserClass = string(v)
		case 93:
			for j := 0; j+1 < len(v); j += 2 {
				m.Arch = append(m.Arch, binary.BigEndian.Uint16(v[j:]))
			}
		case 67:
			if m.File == "" {
				m.File = cstr(v)
			}
		}
		i += 2 + n
	}
	return m, true
}

// HasOption reports whether the message carried option code.
func (m DHCPMessage) HasOption(code uint8) bool {
	for _, c := range m.Options {
		if c == code {
			return true
		}
	}
	return false
}

// TransfersTo returns the transfers made by the client at ip.
func (r *Report) TransfersTo(ip netip.Addr) []*Transfer {
	var out []*Transfer
	for _, t := range r.Transfers {
		if t.Client.Addr() == ip {
			out = append(out, t)
		}
	}
	return out
}

// ClientIP returns the address the client with MAC mac used for TFTP, found
// from its boot-server request (ciaddr) or its DHCP ACK.
func (r *Report) ClientIP(mac string) (netip.Addr, bool) {
	for _, m := range r.DHCP {
		if m.CHAddr == mac && m.Op == 1 && m.CIAddr.IsValid() && !m.CIAddr.IsUnspecified() {
			return m.CIAddr, true
		}
	}
	for _, m := range r.DHCP {
		if m.CHAddr == mac && m.Type == layers.DHCPMsgTypeAck && m.Dst.Addr().IsValid() && m.Dst.Addr() != netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return m.Dst.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// Messages returns the DHCP messages to or from the client with MAC mac.
func (r *Report) Messages(mac string) []DHCPMessage {
	var out []DHCPMessage
	for _, m := range r.DHCP {
		if m.CHAddr == mac {
			out = append(out, m)
		}
	}
	return out
}
