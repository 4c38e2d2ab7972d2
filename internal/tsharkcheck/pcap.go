package tsharkcheck

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// snapLen is the snapshot length written into pcap headers; frames longer
// than this are rejected rather than silently cut.
const snapLen = 65535

// WritePCAP writes frames, each a complete Ethernet II frame without FCS,
// to a new classic pcap file at path (link type Ethernet). Frames get
// timestamps one millisecond apart so tools show them in order.
func WritePCAP(path string, frames [][]byte) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create pcap: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close pcap: %w", cerr)
		}
	}()
	w := pcapgo.NewWriter(f)
	if err := w.WriteFileHeader(snapLen, layers.LinkTypeEthernet); err != nil {
		return fmt.Errorf("write pcap header: %w", err)
	}
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, frame := range frames {
		if len(frame) > snapLen {
			return fmt.Errorf("frame %d: %d bytes exceeds snapshot length %d", i, len(frame), snapLen)
		}
		ci := gopacket.CaptureInfo{
			Timestamp:     start.Add(time.Duration(i) * time.Millisecond),
			CaptureLength: len(frame),
			Length:        len(frame),
		}
		if err := w.WritePacket(ci, frame); err != nil {
			return fmt.Errorf("write frame %d: %w", i, err)
		}
	}
	return nil
}

// ReadPCAP returns every frame of a classic pcap file with Ethernet link
// type, in capture order. Each frame is its own copy.
func ReadPCAP(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open pcap: %w", err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("read pcap header of %s: %w", path, err)
	}
	if r.LinkType() != layers.LinkTypeEthernet {
		return nil, fmt.Errorf("%s: link type %v, want Ethernet", path, r.LinkType())
	}
	var frames [][]byte
	for {
		data, _, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			return frames, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: frame %d: %w", path, len(frames)+1, err)
		}
		frames = append(frames, data)
	}
}

// Endpoint is one end of a UDP conversation inside an Ethernet frame.
type Endpoint struct {
	MAC  [6]byte
	IP   [4]byte
	Port uint16
}

// UDPFrame returns an Ethernet II / IPv4 / UDP frame from src to dst that
// carries payload, with a correct IPv4 header checksum and UDP checksum
// (TTL 64, no IP options, DF clear).
func UDPFrame(src, dst Endpoint, payload []byte) ([]byte, error) {
	eth := &layers.Ethernet{
		SrcMAC:       net.HardwareAddr(src.MAC[:]),
		DstMAC:       net.HardwareAddr(dst.MAC[:]),
		EthernetType: layers.EthernetTypeIPv4,
	}
	ip := &layers.IPv4{
		Version:  4,
		TTL:      64,
		Protocol: layers.IPProtocolUDP,
		SrcIP:    net.IP(src.IP[:]),
		DstIP:    net.IP(dst.IP[:]),
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port), DstPort: layers.UDPPort(dst.Port)}
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		return nil, fmt.Errorf("udp checksum setup: %w", err)
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, eth, ip, udp, gopacket.Payload(payload)); err != nil {
		return nil, fmt.Errorf("serialize udp frame: %w", err)
	}
	return buf.Bytes(), nil
}

// UDPPayloads returns the UDP payload of every IPv4/UDP frame of a pcap
// file (see ReadPCAP), in capture order; other frames are skipped.
func UDPPayloads(path string) ([][]byte, error) {
	frames, err := ReadPCAP(path)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, data := range frames {
		p := gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.Default)
		if udp, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
			out = append(out, udp.Payload)
		}
	}
	return out, nil
}
