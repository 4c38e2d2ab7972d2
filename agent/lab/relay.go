package lab

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Relayed is a branch subnet whose DHCP traffic goes through a relay: the
// plain DHCP server and the peerboot responder in the core subnet, a DHCP
// relay on the router.
type Relayed struct {
	Responder *Proc // at .3 in the core subnet, metrics on :9121
	DHCP      *Proc // dnsmasq at .4 in the core subnet, leasing .100-.150 of the branch
	Relay     *Proc // dnsmasq --dhcp-relay on the router, to both
}

// ResponderMetricsURL is the address of the responder's /metrics.
func (r *Relayed) ResponderMetricsURL() string {
	return "http://" + r.Responder.Host.Addr.String() + ":9121/metrics"
}

// SnoopDHCP makes the switch drop DHCP server messages (UDP from port 67)
// that agent i sends, as DHCP snooping does: only relayed answers reach the
// branch's clients.
func (s *Site) SnoopDHCP(i int) error {
	a := s.Agents[i]
	if out, err := exec.Command("ip", "netns", "exec", s.Lab.HubNS(), "ebtables", "-A", "FORWARD", "-s", a.Host.MAC,
		"-p", "IPv4", "--ip-proto", "udp", "--ip-sport", "67", "-j", "DROP").CombinedOutput(); err != nil {
		return fmt.Errorf("lab: ebtables for %s: %w: %s", a.Name, err, out)
	}
	return nil
}

// StartRelayed serves the branch subnet's DHCP from the core subnet (the
// site needs Options.CoreSubnet): it starts the responder (with the admin
// token, plus responderArgs), a plain DHCP server and the relay on the
// router. Close stops them.
func (s *Site) StartRelayed(ctx context.Context, responderArgs ...string) (*Relayed, error) {
	if s.Core == nil || s.Router == nil {
		return nil, errors.New("lab: a relayed subnet needs a core subnet (Options.CoreSubnet)")
	}
	var r Relayed
	rh, err := s.AddCoreHost("responder", 3)
	if err != nil {
		return nil, err
	}
	args := append([]string{"responder", "--interface", "eth0", "--central-url", s.CentralURL,
		"--central-token", s.AdminToken, "--metrics-listen", rh.Addr.String() + ":9121"}, responderArgs...)
	if r.Responder, err = s.StartProc(ctx, "responder", rh, args...); err != nil {
		return nil, err
	}
	dh, err := s.AddCoreHost("dhcp", 4)
	if err != nil {
		return nil, err
	}
	if r.DHCP, err = s.StartCommand("dhcp", dh, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--log-dhcp",
		"--pid-file=", "--dhcp-leasefile="+filepath.Join(s.Dir, "dhcp.leases"), "--dhcp-authoritative",
		"--dhcp-range="+host(s.Lab.Prefix, 100)+","+host(s.Lab.Prefix, 150)+",255.255.255.0,10m"); err != nil {
		return nil, err
	}
	router := s.Router.Addr.String()
	if r.Relay, err = s.StartCommand("relay", s.Router, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--log-dhcp",
		"--pid-file=", "--dhcp-relay="+router+","+dh.Addr.String(), "--dhcp-relay="+router+","+rh.Addr.String()); err != nil {
		return nil, err
	}
	return &r, nil
}
