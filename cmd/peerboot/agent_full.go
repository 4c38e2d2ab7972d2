package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/peerboot/peerboot/agent"
	"github.com/peerboot/peerboot/agent/config"
)

// wantsStandalone reports whether the agent command line (or the config
// file it names) asks for standalone mode; anything else is the full,
// Central-backed agent.
func wantsStandalone(args []string) bool {
	cfgPath := os.Getenv(config.EnvName("config"))
	for i, a := range args {
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		switch name {
		case "standalone":
			if !hasVal {
				return true
			}
			b, err := strconv.ParseBool(val)
			return err != nil || b // a bad value is reported by the standalone parser
		case "config":
			if hasVal {
				cfgPath = val
			} else if i+1 < len(args) {
				cfgPath = args[i+1]
			}
		}
	}
	if cfgPath == "" {
		return false
	}
	f, err := os.Open(cfgPath)
	if err != nil {
		return false // the full agent reports the missing file
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), "=")
		if ok && strings.TrimSpace(name) == "standalone" {
			b, _ := strconv.ParseBool(strings.TrimSpace(val))
			return b
		}
	}
	return false
}

// runFullAgent runs the Central-backed agent: settings from the config
// file, PEERBOOT_* environment and flags (in that order of precedence).
func runFullAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg config.Config
	set := config.NewSet(&cfg, "peerboot agent", io.Discard)
	if err := set.Load(args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "usage: peerboot agent [--config FILE] [flags]   (standalone mode: peerboot agent --standalone -h)")
			fmt.Fprintln(stderr, "Each flag NAME may also be set as PEERBOOT_NAME in the environment or as \"name = value\" in the config file.")
			set.FlagSet().SetOutput(stderr)
			set.FlagSet().PrintDefaults()
			return err
		}
		if errors.Is(err, config.ErrUsage) {
			return fmt.Errorf("%w: %s", errUsage, strings.TrimPrefix(err.Error(), config.ErrUsage.Error()+": "))
		}
		return err
	}
	agent.Version = version
	a, err := agent.New(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
