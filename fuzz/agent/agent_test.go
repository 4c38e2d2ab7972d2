package agent

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/peerboot/peerboot/agent/config"
	"github.com/peerboot/peerboot/agent/spool"
	"github.com/peerboot/peerboot/central/model"
)

func FuzzSpoolRecord(f *testing.F) {
	ev := model.Event{ID: "ev-1", AgentID: "a-1", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Type: model.EventPXEDecision,
		MAC: "02:00:00:00:00:01", Detail: json.RawMessage(`{"action":"boot"}`)}
	rec, _ := spool.EncodeRecord(ev)
	f.Add(rec)
	f.Add(rec[:len(rec)/2])
	f.Add([]byte("00000000 {}\n"))
	f.Add([]byte("zzzzzzzz {\"id\":1}\n"))
	f.Add([]byte("\n"))
	f.Fuzz(func(t *testing.T, line []byte) {
		got, ok := spool.DecodeRecord(line)
		if !ok {
			return
		}
		// Whatever decodes re-encodes to a record that decodes the same.
		again, err := spool.EncodeRecord(got)
		if err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
		back, ok := spool.DecodeRecord(again)
		if !ok || back.ID != got.ID || back.Type != got.Type || !bytes.Equal(back.Detail, got.Detail) {
			t.Fatalf("round trip changed the event: %+v vs %+v", back, got)
		}
	})
}

func FuzzConfigFile(f *testing.F) {
	f.Add("interface = eth0\ncentral-url = http://198.18.0.1:8080\n")
	f.Add("# comment\nweight = 99\nignore-mac = 02:00:00:00:00:01, 02:00:00:00:00:02\ncache-size = 20G\n")
	f.Add("interface eth0\n")
	f.Add("tftp-port = 70000\n")
	f.Add("reserve = -1s\nelection-wait = 0s\n")
	f.Add("log-format = \"json\"\nunknown = 1\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg, err := config.LoadReader(strings.NewReader(text), "agent.conf")
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
			return
		}
		// An accepted file yields a configuration that validates.
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted configuration does not validate: %v", err)
		}
		if cfg.Weight < 0 || cfg.Weight > 99 || cfg.Interface == "" || cfg.CentralURL == "" {
			t.Fatalf("accepted out-of-range configuration: %+v", cfg)
		}
	})
}
