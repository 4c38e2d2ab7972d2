package rawsock

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

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

// ringConfig sizes the ring.
type ringConfig struct {
	blockSize int // bytes per block, a multiple of the page size
	blocks    int
	timeoutMS int // block retire timeout
}

// setupRing switches fd to TPACKET_V3 and maps its receive ring. It must
// run before bind.
func setupRing(fd int, rc ringConfig) (*rxRing, error) {
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
	mem, err := unix.Mmap(fd, 0, rc.blockSize*rc.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap of the receive ring: %w", err)
	}
	return &rxRing{mem: mem, blockSize: rc.blockSize, blocks: rc.blocks}, nil
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

func (r *rxRing) close() error {
	if r == nil || r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}
