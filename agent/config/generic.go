package config

import (
	"errors"
	"flag"
	"fmt"
)

// LoadFlagSet gives any daemon's flag set the same three sources as the
// agent: the file named by its "config" flag (or PEERBOOT_CONFIG), then
// PEERBOOT_NAME environment variables, then the command line, each
// overriding the one before. fs must define a string flag "config".
func LoadFlagSet(fs *flag.FlagSet, args []string, env func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments: %v", ErrUsage, fs.Args())
	}
	s := &Set{fs: fs}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			s.settings = append(s.settings, setting{name: f.Name, value: f.Value})
		}
	})
	if c := fs.Lookup("config"); c != nil {
		s.config = c.Value.String()
	}
	return s.apply(env)
}
