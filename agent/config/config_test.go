package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func load(t *testing.T, file string, env map[string]string, args ...string) (*Config, error) {
	t.Helper()
	var cfg Config
	s := NewSet(&cfg, "agent", io.Discard)
	if file != "" {
		p := filepath.Join(t.TempDir(), "agent.conf")
		if err := os.WriteFile(p, []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append([]string{"--config", p}, args...)
	}
	err := s.Load(args, func(k string) string { return env[k] })
	return &cfg, err
}

const minimal = "--interface=eth0 --central-url=http://198.18.0.1:8080"

func TestPrecedenceFileEnvFlags(t *testing.T) {
	file := "# agent\ninterface = eth1\ncentral-url = http://198.18.0.1:8080\nweight = 10\nreserve = 40s\nignore-mac = 02:00:00:00:00:01\nignore-mac = 02:00:00:00:00:02\ncache-size = 2G\n"
	env := map[string]string{"PEERBOOT_WEIGHT": "20", "PEERBOOT_RESERVE": "50s"}
	cfg, err := load(t, file, env, "--weight=30")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Weight != 30 {
		t.Errorf("weight = %d, want 30 from the flag", cfg.Weight)
	}
	if cfg.Reserve != 50*time.Second {
		t.Errorf("reserve = %v, want 50s from the environment", cfg.Reserve)
	}
	if cfg.Interface != "eth1" || cfg.CacheSize != 2<<30 {
		t.Errorf("file values lost: %+v", cfg)
	}
	if len(cfg.IgnoreMACs) != 2 {
		t.Errorf("ignore-mac = %v, want two entries from the file", cfg.IgnoreMACs)
	}
	if cfg.SpoolDir != "/var/cache/peerboot/spool" {
		t.Errorf("spool dir default = %q", cfg.SpoolDir)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, "", nil, strings.Fields(minimal)...)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ElectionPort != 2012 || cfg.Weight != 50 || cfg.SnoopServerPort != 2067 || cfg.SnoopClientPort != 2068 ||
		cfg.TFTPPort != 69 || cfg.LogFormat != "text" || cfg.ElectionWait != 200*time.Millisecond {
		t.Errorf("unexpected defaults: %+v", cfg)
	}
}

func TestErrorsNameTheSetting(t *testing.T) {
	cases := []struct {
		name string
		file string
		env  map[string]string
		args string
		want string
	}{
		{"weight range", "", nil, minimal + " --weight=100", "setting weight (--weight, PEERBOOT_WEIGHT): 100 is out of range 0-99"},
		{"missing interface", "", nil, "--central-url=http://198.18.0.1", "setting interface"},
		{"missing central", "", nil, "--interface=eth0", "setting central-url"},
		{"bad url", "", nil, "--interface=eth0 --central-url=ftp://x", "central-url"},
		{"unknown flag", "", nil, minimal + " --wieght=3", "flag provided but not defined: -wieght"},
		{"bad env", "", map[string]string{"PEERBOOT_RESERVE": "soon"}, minimal, "PEERBOOT_RESERVE=\"soon\": not a duration"},
		{"unknown file key", "interface = eth0\ncolour = red\n", nil, "--central-url=http://198.18.0.1", "line 2: unknown setting \"colour\""},
		{"file without equals", "interface eth0\n", nil, "", "line 1: want name = value"},
		{"file bad value", "tftp-port = sixty-nine\n", nil, minimal, "line 1: tftp-port = \"sixty-nine\": not an integer"},
		{"file duplicate", "weight = 1\nweight = 2\n", nil, minimal, "line 2: weight is already set on line 1"},
		{"bad mac", "", nil, minimal + " --ignore-mac=zz", "setting ignore-mac"},
		{"log format", "", nil, minimal + " --log-format=xml", "setting log-format"},
		{"short key", "", nil, minimal + " --election-key=short", "setting election-key"},
		{"cache size", "", nil, minimal + " --cache-size=lots", "not a size"},
		{"blksize", "", nil, minimal + " --tftp-max-blksize=70000", "setting tftp-max-blksize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := load(t, c.file, c.env, strings.Fields(c.args)...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestMissingConfigFile(t *testing.T) {
	var cfg Config
	s := NewSet(&cfg, "agent", io.Discard)
	err := s.Load([]string{"--config", "/nonexistent/peerboot.conf"}, func(string) string { return "" })
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "4K": 4096, "10G": 10 << 30, "3MiB": 3 << 20, "1tb": 1 << 40} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("-1"); err == nil {
		t.Error("negative size accepted")
	}
	if got := FormatSize(10 << 30); got != "10G" {
		t.Errorf("FormatSize = %q", got)
	}
}
