package model

import (
	"encoding/json"
	"time"
)

// Arch is the processor architecture of a boot image or a client.
type Arch string

// Architectures a boot image can be built for.
const (
	ArchX86   Arch = "x86"
	ArchX64   Arch = "x64"
	ArchARM64 Arch = "arm64"
)

// Valid reports whether a is a known architecture.
func (a Arch) Valid() bool { return a == ArchX86 || a == ArchX64 || a == ArchARM64 }

// Machine is a computer Central knows, identified by MAC and/or SMBIOS GUID.
type Machine struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	MAC  string `json:"mac,omitempty"`  // normalised "aa:bb:cc:dd:ee:ff", or ""
	GUID string `json:"guid,omitempty"` // normalised lower-case UUID, or "" (unusable GUIDs are dropped)
}

// ImageFile is one file of a boot image, stored content-addressed by SHA256.
type ImageFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Image is a boot image: an id (the boot image id agents cache under), its
// architecture and its files.
type Image struct {
	ID          string      `json:"id"`
	Arch        Arch        `json:"arch"`
	Description string      `json:"description,omitempty"`
	Files       []ImageFile `json:"files"`
	CreatedAt   time.Time   `json:"created_at"`
}

// Deployment makes a machine, or every unknown computer, boot an image.
type Deployment struct {
	ID string `json:"id"`
	// MachineID is the target machine; empty when UnknownComputers is set.
	MachineID        string `json:"machine_id,omitempty"`
	UnknownComputers bool   `json:"unknown_computers,omitempty"`
	ImageID          string `json:"image_id"`
	// Required deployments boot without a key press and run once; available
	// ones wait for the user (F12) and can run any number of times.
	Required bool `json:"required"`
	// Priority orders deployments of the same kind: higher wins.
	Priority int `json:"priority"`
	// Subnets optionally limits the deployment to clients in these CIDR
	// prefixes; empty means everywhere.
	Subnets   []string  `json:"subnets,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Consumption records that a required deployment was run by a client, so it
// is not offered again until an administrator clears it.
type Consumption struct {
	DeploymentID string    `json:"deployment_id"`
	ClientKey    string    `json:"client_key"`
	At           time.Time `json:"at"`
}

// Agent is an enrolled peerboot agent.
type Agent struct {
	ID         string    `json:"id"`
	Host       string    `json:"host"`
	Subnets    []string  `json:"subnets"`
	Addresses  []string  `json:"addresses"`
	Version    string    `json:"version,omitempty"`
	Weight     int       `json:"weight"`
	Load       float64   `json:"load"`
	Images     []string  `json:"images"`
	EnrolledAt time.Time `json:"enrolled_at"`
	LastSeen   time.Time `json:"last_seen"`
}

// Event kinds agents report.
const (
	EventPXEDecision = "pxe.decision" // an agent answered (or declined) a PXE client
	EventPXEBoot     = "pxe.boot"     // a client was served a boot image
	EventElection    = "election"     // an election result
	EventTransfer    = "transfer"     // TFTP/HTTP transfer statistics
)

// Event is something an agent reports. ID is chosen by the agent and unique
// per agent, so a retried batch never duplicates an event.
type Event struct {
	ID           string          `json:"id"`
	AgentID      string          `json:"agent_id"`
	Time         time.Time       `json:"time"`
	Type         string          `json:"type"`
	MAC          string          `json:"mac,omitempty"`
	GUID         string          `json:"guid,omitempty"`
	Subnet       string          `json:"subnet,omitempty"`
	ImageID      string          `json:"image_id,omitempty"`
	DeploymentID string          `json:"deployment_id,omitempty"`
	Required     bool            `json:"required,omitempty"`
	Detail       json.RawMessage `json:"detail,omitempty"`
	ReceivedAt   time.Time       `json:"received_at"`
}

// Config is everything the boot decision depends on apart from consumed
// required deployments.
type Config struct {
	Machines    []Machine    `json:"machines"`
	Deployments []Deployment `json:"deployments"`
	Images      []Image      `json:"images"`
	IgnoredMACs []string     `json:"ignored_macs"`
}

// Version identifies a state of the store: Config changes bump Config,
// consumed/cleared required deployments bump State.
type Version struct {
	Config int64 `json:"config"`
	State  int64 `json:"state"`
}
