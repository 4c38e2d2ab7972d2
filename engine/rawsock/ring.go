package rawsock

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/peerboot/peerboot/codec/frame"
	"github.com/peerboot/peerboot/engine"
)

// Layout of the TPACKET_V3 receive ring (linux/if_packet.h). Each block
// starts with a tpacket_block_desc; the packets in it are chained by
// tpacket3_hdr.tp_next_offset.
const (
	blockStatusOff   = 8  // tpacket_block_desc.hdr.bh1.block_status
	blockNumPktsOff  = 12 // .num_pkts
	blockFirstPktOff = 16 // .offset_to_first_pkt
	pktNextOff       = 0  // tpacket3_hdr.tp_next_offset
	pktSnaplenOff    = 12 // .tp_snaplen
	pktLenOff        = 16 // .tp_len
	pktStatusOff     = 20 // .tp_status
	pktMacOff        = 24 // .tp_mac
	pktHdrLen        = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
	sllPkttypeOff    = pktHdrLen + 10
)

// rxRing is a TPACKET_V3 receive ring mapped into user space: the kernel
// fills blocks of frames and hands a block over when it is full or when
// its retire timeout expires, so one wake-up delivers every frame that
// arrived meanwhile, and reading them needs no system call.
type rxRing struct {
	mem       []byte
	blockSize int
	blocks    int

	cur  int // block being read
	next int // offset in cur of the next frame
	left int // frames of cur not yet read; 0: cur is not ours yet
}

// ringConfig sizes the receive ring.
type ringConfig struct {
	blockSize int // bytes per receive block, a multiple of the page size
	blocks    int
	timeoutMS int // block retire timeout
}

// Transmit ring geometry: fixed 2 KiB slots, four to a page-aligned block.
const (
	txFrameSize = 2048
	txBlockSize = 4 * txFrameSize
	txDataOff   = pktHdrLen // the virtio_net_hdr follows the tpacket3_hdr
	// struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size,
	// csum_start, csum_offset.
	vnetHdrLen          = 10
	vnetHdrLenOff       = 2
	vnetCsumStartOff    = 6
	vnetCsumOffsetOff   = 8
	vnetFlagNeedsCsum   = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	udpChecksumFieldOff = 6 // in the UDP header
	// udpOff is where the UDP header starts in a reply frame (untagged,
	// no IPv4 options): the checksum offload's csum_start.
	udpOff = frame.HeaderLen - frame.UDPHeaderLen
	// txMaxFrame is the longest frame a slot holds; an Ethernet frame of
	// a 1500-byte MTU is 1514.
	txMaxFrame = txFrameSize - txDataOff - vnetHdrLen
)

// setupRxRing switches fd to TPACKET_V3 and maps its receive ring. It
// must run before bind.
func setupRxRing(fd int, rc ringConfig) (*rxRing, error) {
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("PACKET_VERSION TPACKET_V3: %w", err)
	}
	const frameSize = 2048 // only used by the kernel's sanity checks in V3
	req := unix.TpacketReq3{
		Block_size:     uint32(rc.blockSize),
		Block_nr:       uint32(rc.blocks),
		Frame_size:     frameSize,
		Frame_nr:       uint32(rc.blockSize / frameSize * rc.blocks),
		Retire_blk_tov: uint32(rc.timeoutMS),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("PACKET_RX_RING: %w", err)
	}
	size := rc.blockSize * rc.blocks
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap of the receive ring: %w", err)
	}
	return &rxRing{mem: mem, blockSize: rc.blockSize, blocks: rc.blocks}, nil
}

// openTxSocket opens the AF_PACKET socket replies leave through, with a
// TPACKET_V3 transmit ring of at least frames slots, bound to the
// interface with protocol 0 so it never receives anything.
//
// Sending from a socket of its own rather than the receiving one keeps
// the cost of a sent frame constant: the kernel calls the sending
// socket's write-space callback each time it frees a sent frame, and on
// the receiving socket, which the reader waits on with epoll, that
// callback takes the wait queue's lock and runs epoll's callback for
// every reply. Nobody waits on this socket.
func openTxSocket(ifIndex, frames int) (fd int, tx *txRing, err error) {
	fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, fmt.Errorf("socket(AF_PACKET): %w", err)
	}
	fail := func(what string, err error) (int, *txRing, error) {
		unix.Close(fd)
		return -1, nil, fmt.Errorf("%s: %w", what, err)
	}
	// Replies go straight to the driver: a DHCP reply gains nothing from
	// the device's queueing discipline, and skipping it is cheaper.
	_ = unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fail("PACKET_VERSION TPACKET_V3", err)
	}
	// Settable only before the ring exists. PACKET_LOSS: a frame the
	// kernel cannot send is skipped rather than stopping the ring.
	// PACKET_VNET_HDR: every slot starts with a virtio_net_hdr (see
	// txRing.fill).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_LOSS, 1); err != nil {
		return fail("PACKET_LOSS", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fail("PACKET_VNET_HDR", err)
	}
	blocks := (frames*txFrameSize + txBlockSize - 1) / txBlockSize
	req := unix.TpacketReq3{
		Block_size: txBlockSize,
		Block_nr:   uint32(blocks),
		Frame_size: txFrameSize,
		Frame_nr:   uint32(blocks * txBlockSize / txFrameSize),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
		return fail("PACKET_TX_RING", err)
	}
	size := blocks * txBlockSize
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return fail("mmap of the transmit ring", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifIndex}); err != nil {
		_ = unix.Munmap(mem)
		return fail("bind", err)
	}
	return fd, &txRing{mem: mem, frames: size / txFrameSize}, nil
}

func (r *rxRing) status(block int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[block*r.blockSize+blockStatusOff]))
}

// ready reports whether a frame can be read without waiting.
func (r *rxRing) ready() bool {
	return r.left > 0 || atomic.LoadUint32(r.status(r.cur))&unix.TP_STATUS_USER != 0
}

// read copies up to len(pkts) frames into the packets' buffers, handing
// every block it empties back to the kernel. It returns how many packets
// it filled and how many frames it skipped because they were addressed to
// another host (seen only when the interface is promiscuous or a bridge
// floods unknown unicast).
func (r *rxRing) read(pkts []*engine.Packet, ifIndex int) (n int, otherHost uint64) {
	for n < len(pkts) {
		if r.left == 0 {
			b := r.cur * r.blockSize
			if atomic.LoadUint32(r.status(r.cur))&unix.TP_STATUS_USER == 0 {
				return n, otherHost
			}
			r.left = int(binary.NativeEndian.Uint32(r.mem[b+blockNumPktsOff:]))
			r.next = b + int(binary.NativeEndian.Uint32(r.mem[b+blockFirstPktOff:]))
			if r.left == 0 {
				r.release()
				continue
			}
		}
		h := r.mem[r.next:]
		next := int(binary.NativeEndian.Uint32(h[pktNextOff:]))
		snap := int(binary.NativeEndian.Uint32(h[pktSnaplenOff:]))
		wire := int(binary.NativeEndian.Uint32(h[pktLenOff:]))
		mac := int(binary.NativeEndian.Uint16(h[pktMacOff:]))
		if h[sllPkttypeOff] == unix.PACKET_OTHERHOST {
			otherHost++
		} else {
			p := pkts[n]
			buf := p.Buffer()
			l := 0
			if snap == wire && mac+snap <= len(h) && snap <= len(buf) {
				l = copy(buf, h[mac:mac+snap])
			} // else truncated: the engine counts it as malformed
			p.Frame = buf[:l]
			p.IfIndex = ifIndex
			n++
		}
		r.next += next
		r.left--
		if r.left == 0 {
			r.release()
		}
	}
	return n, otherHost
}

// release hands the current block back to the kernel and moves on.
func (r *rxRing) release() {
	atomic.StoreUint32(r.status(r.cur), unix.TP_STATUS_KERNEL)
	r.left = 0
	r.cur = (r.cur + 1) % r.blocks
}

// txRing is a TPACKET_V3 transmit ring: frames are written into slots
// marked "send request", and one send() with no data makes the kernel
// transmit every marked slot in ring order, with no copy from user space
// and no return to user space between frames. The kernel marks a slot
// available again once its frame has left.
type txRing struct {
	mem    []byte
	frames int
	head   int // next slot to fill
}

func (t *txRing) status(slot int) *uint32 {
	return (*uint32)(unsafe.Pointer(&t.mem[slot*txFrameSize+pktStatusOff]))
}

// claim returns the next slot if the kernel is done with it.
func (t *txRing) claim() (slot int, ok bool) {
	slot = t.head
	if atomic.LoadUint32(t.status(slot)) != unix.TP_STATUS_AVAILABLE {
		return 0, false
	}
	t.head = (t.head + 1) % t.frames
	return slot, true
}

// fill copies frame into slot and hands the slot to the kernel.
func (t *txRing) fill(slot int, frame []byte) {
	h := t.mem[slot*txFrameSize : (slot+1)*txFrameSize]
	binary.NativeEndian.PutUint32(h[pktNextOff:], 0)
	binary.NativeEndian.PutUint32(h[pktLenOff:], uint32(vnetHdrLen+len(frame)))
	binary.NativeEndian.PutUint32(h[pktSnaplenOff:], uint32(vnetHdrLen+len(frame)))
	// virtio_net_hdr (in the host's byte order, as legacy virtio headers
	// are): no GSO; hdr_len = the whole frame, so the kernel copies the
	// small frame into the socket buffer instead of referencing the
	// ring's page (a veth or bridge would copy it anyway, at a page
	// allocation per frame); and checksum offload of the UDP datagram,
	// whose checksum field holds the pseudo-header sum (buildFrame):
	// the same CHECKSUM_PARTIAL frame a UDP socket hands to the device.
	v := h[txDataOff : txDataOff+vnetHdrLen]
	clear(v)
	v[0] = vnetFlagNeedsCsum
	binary.NativeEndian.PutUint16(v[vnetHdrLenOff:], uint16(len(frame)))
	binary.NativeEndian.PutUint16(v[vnetCsumStartOff:], udpOff)
	binary.NativeEndian.PutUint16(v[vnetCsumOffsetOff:], udpChecksumFieldOff)
	copy(h[txDataOff+vnetHdrLen:], frame)
	atomic.StoreUint32(t.status(slot), unix.TP_STATUS_SEND_REQUEST)
}

// pending reports whether slot still waits to be sent.
func (t *txRing) pending(slot int) bool {
	return atomic.LoadUint32(t.status(slot)) == unix.TP_STATUS_SEND_REQUEST
}

func (t *txRing) close() error {
	if t == nil || t.mem == nil {
		return nil
	}
	err := unix.Munmap(t.mem)
	t.mem = nil
	return err
}

func (r *rxRing) close() error {
	if r == nil || r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}
