package pxesim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"golang.org/x/sys/unix"

	tftpclient "github.com/peerboot/peerboot/tftp/client"
)

// Client is one simulated PXE client.
type Client struct {
	MAC       net.HardwareAddr
	GUID      [16]byte
	Arch      uint16     // option 93 (0 BIOS, 6 EFI IA32, 7/9 EFI x64, 11 ARM64)
	Interface string     // interface to broadcast on (e.g. eth0)
	Addr      netip.Addr // the client's address (ciaddr of its 4011 request, TFTP source)
	// Tries is how many DISCOVERs are sent before giving up (default 4);
	// Wait is how long each waits for an offer (default 2s).
	Tries int
	Wait  time.Duration
	// Blksize and Windowsize are asked of the TFTP server (defaults 1468, 16).
	Blksize, Windowsize int
}

// Result is what one boot did.
type Result struct {
	Server     netip.Addr    // the agent that offered (option 54)
	Offers     int           // OFFERs received for the answered DISCOVER
	Servers    []netip.Addr  // every distinct server that offered
	Discovers  int           // DISCOVERs sent
	BootFile   string        // from the 4011 ACK
	TFTPServer netip.Addr    // where the boot file came from (the ACK's siaddr)
	Bytes      int64         // downloaded
	Blksize    int           // negotiated
	Windowsize int           // negotiated
	OfferAfter time.Duration // first DISCOVER to the offer
	Duration   time.Duration // whole boot

	offerAt time.Time
}

// ArchName names option 93 values for reports.
func ArchName(a uint16) string {
	switch a {
	case 0:
		return "bios"
	case 6:
		return "efi-ia32"
	case 7, 9:
		return "efi-x64"
	case 10:
		return "efi-arm32"
	case 11:
		return "efi-arm64"
	}
	return fmt.Sprintf("arch-%d", a)
}

func (c *Client) vendor() string {
	return fmt.Sprintf("PXEClient:Arch:%05d:UNDI:003016", c.Arch)
}

func (c *Client) options() []dhcpv4.Modifier {
	guid := append([]byte{0}, c.GUID[:]...)
	return []dhcpv4.Modifier{
		dhcpv4.WithHwAddr(c.MAC),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(c.vendor())),
		dhcpv4.WithOption(dhcpv4.OptClientArch(iana.Arch(c.Arch))),
		dhcpv4.WithGeneric(dhcpv4.OptionClientNetworkInterfaceIdentifier, []byte{1, 3, 16}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, guid),
		dhcpv4.WithOption(dhcpv4.OptMaxMessageSize(1464)),
	}
}

func control(iface string, broadcast bool) func(string, string, syscall.RawConn) error {
	return func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			set := func(opt int) {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, opt, 1)
				}
			}
			set(unix.SO_REUSEADDR)
			if broadcast {
				set(unix.SO_BROADCAST)
			}
			if serr == nil && iface != "" {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, iface)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}
}

// Boot runs one whole PXE boot. w receives the boot file (io.Discard is
// fine).
func (c *Client) Boot(ctx context.Context, w io.Writer) (Result, error) {
	start := time.Now()
	var res Result
	if c.Tries <= 0 {
		c.Tries = 4
	}
	if c.Wait <= 0 {
		c.Wait = 2 * time.Second
	}
	if c.Blksize == 0 {
		c.Blksize = 1468
	}
	if c.Windowsize == 0 {
		c.Windowsize = 16
	}
	lc := net.ListenConfig{Control: control(c.Interface, true)}
	pc, err := lc.ListenPacket(ctx, "udp4", "0.0.0.0:68")
	if err != nil {
		return res, fmt.Errorf("port 68: %w", err)
	}
	defer pc.Close()
	conn := pc.(*net.UDPConn)
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}

	var offer *dhcpv4.DHCPv4
	for try := 0; try < c.Tries && offer == nil; try++ {
		disc, err := dhcpv4.NewDiscovery(c.MAC, append(c.options(), dhcpv4.WithBroadcast(true))...)
		if err != nil {
			return res, err
		}
		disc.SetBroadcast()
		if _, err := conn.WriteToUDP(disc.ToBytes(), bcast); err != nil {
			return res, fmt.Errorf("send DISCOVER: %w", err)
		}
		res.Discovers++
		sent := time.Now()
		deadline := sent.Add(c.Wait)
		buf := make([]byte, 2048)
		for {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			// Keep listening a little after the first offer to count
			// duplicates from other agents.
			if offer != nil && time.Now().After(res.firstOfferAt(sent).Add(300*time.Millisecond)) {
				break
			}
			conn.SetReadDeadline(minTime(deadline, time.Now().Add(100*time.Millisecond)))
			n, _, err := conn.ReadFromUDP(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					if time.Now().After(deadline) {
						break
					}
					continue
				}
				return res, err
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || m.TransactionID != disc.TransactionID || m.MessageType() != dhcpv4.MessageTypeOffer {
				continue
			}
			// Only ProxyDHCP offers count: a plain DHCP server's address
			// offer (yiaddr set, no PXEClient) is not a boot offer.
			if y := m.YourIPAddr.To4(); (y != nil && !y.IsUnspecified()) || !strings.HasPrefix(m.ClassIdentifier(), "PXEClient") {
				continue
			}
			sid, ok := netip.AddrFromSlice(m.ServerIdentifier().To4())
			if !ok {
				continue
			}
			res.Offers++
			res.Servers = appendNew(res.Servers, sid)
			if offer == nil {
				offer = m
				res.Server = sid
				res.OfferAfter = time.Since(start)
				res.offerAt = time.Now()
			}
		}
	}
	if offer == nil {
		return res, fmt.Errorf("no offer after %d DISCOVERs", res.Discovers)
	}
	// Boot server request on 4011, to the server that offered (option 54),
	// as PXE firmware does after a ProxyDHCP offer.
	siaddr := res.Server
	lc4 := net.ListenConfig{Control: control("", false)}
	rp, err := lc4.ListenPacket(ctx, "udp4", netip.AddrPortFrom(c.Addr, 0).String())
	if err != nil {
		return res, fmt.Errorf("4011 socket: %w", err)
	}
	defer rp.Close()
	rconn := rp.(*net.UDPConn)
	var ack *dhcpv4.DHCPv4
	for try := 0; try < 4 && ack == nil; try++ {
		req, err := dhcpv4.New(append(c.options(), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest),
			dhcpv4.WithClientIP(c.Addr.AsSlice()))...)
		if err != nil {
			return res, err
		}
		if _, err := rconn.WriteToUDP(req.ToBytes(), &net.UDPAddr{IP: siaddr.AsSlice(), Port: 4011}); err != nil {
			return res, fmt.Errorf("send 4011 REQUEST: %w", err)
		}
		rconn.SetReadDeadline(time.Now().Add(time.Second))
		buf := make([]byte, 2048)
		for {
			n, _, err := rconn.ReadFromUDP(buf)
			if err != nil {
				break
			}
			m, err := dhcpv4.FromBytes(buf[:n])
			if err == nil && m.TransactionID == req.TransactionID && m.MessageType() == dhcpv4.MessageTypeAck {
				ack = m
				break
			}
		}
	}
	if ack == nil {
		return res, fmt.Errorf("no ACK from %s:4011", siaddr)
	}
	res.BootFile = ack.BootFileName
	if res.BootFile == "" {
		return res, fmt.Errorf("ACK from %s without a boot file", siaddr)
	}
	tsrv := siaddr
	if a, ok := netip.AddrFromSlice(ack.ServerIPAddr.To4()); ok && !a.IsUnspecified() {
		tsrv = a
	}
	res.TFTPServer = tsrv
	if w == nil {
		w = io.Discard
	}
	cw := &countWriter{w: w}
	r, err := tftpclient.Get(ctx, netip.AddrPortFrom(tsrv, 69).String(), res.BootFile, cw,
		tftpclient.Options{Blksize: c.Blksize, Windowsize: c.Windowsize, Tsize: true, Timeout: time.Second})
	res.Bytes = cw.n
	res.Blksize, res.Windowsize = r.Blksize, r.Windowsize
	res.Duration = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("TFTP %s from %s: %w", res.BootFile, tsrv, err)
	}
	return res, nil
}

func (r *Result) firstOfferAt(fallback time.Time) time.Time {
	if r.offerAt.IsZero() {
		return fallback
	}
	return r.offerAt
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func appendNew(list []netip.Addr, a netip.Addr) []netip.Addr {
	for _, x := range list {
		if x == a {
			return list
		}
	}
	return append(list, a)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
