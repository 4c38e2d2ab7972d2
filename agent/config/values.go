package config

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

func (s *Set) add(name, usage, def string, v flag.Value) {
	s.fs.Var(v, name, usage+"; env "+EnvName(name))
	s.settings = append(s.settings, setting{name: name, usage: usage, def: def, value: v})
}

func (s *Set) str(p *string, name, def, usage string) {
	*p = def
	s.add(name, usage, def, (*stringValue)(p))
}

func (s *Set) integer(p *int, name string, def int, usage string) {
	*p = def
	s.add(name, usage, strconv.Itoa(def), (*intValue)(p))
}

func (s *Set) float(p *float64, name string, def float64, usage string) {
	*p = def
	s.add(name, usage, strconv.FormatFloat(def, 'g', -1, 64), (*floatValue)(p))
}

func (s *Set) boolean(p *bool, name string, def bool, usage string) {
	*p = def
	s.add(name, usage, strconv.FormatBool(def), (*boolValue)(p))
}

func (s *Set) dur(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	s.add(name, usage, def.String(), (*durValue)(p))
}

func (s *Set) size(p *int64, name string, def int64, usage string) {
	*p = def
	s.add(name, usage, FormatSize(def), (*sizeValue)(p))
}

func (s *Set) list(p *[]string, name, usage string) {
	s.add(name, usage, "", (*listValue)(p))
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not an integer")
	}
	*v = intValue(n)
	return nil
}

type floatValue float64

func (v *floatValue) String() string { return strconv.FormatFloat(float64(*v), 'g', -1, 64) }
func (v *floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v = floatValue(f)
	return nil
}

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a boolean (true or false)")
	}
	*v = boolValue(b)
	return nil
}

type durValue time.Duration

func (v *durValue) String() string { return time.Duration(*v).String() }
func (v *durValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration (e.g. 250ms, 30s, 2h)")
	}
	*v = durValue(d)
	return nil
}

type sizeValue int64

func (v *sizeValue) String() string { return FormatSize(int64(*v)) }
func (v *sizeValue) Set(s string) error {
	n, err := ParseSize(s)
	if err != nil {
		return err
	}
	*v = sizeValue(n)
	return nil
}

// listValue is a repeatable, comma-separated list.
type listValue []string

func (v *listValue) String() string { return strings.Join(*v, ",") }
func (v *listValue) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*v = append(*v, p)
		}
	}
	return nil
}

// ParseSize reads a byte count with an optional K, M, G or T suffix
// (powers of 1024; a trailing B or iB is allowed).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("not a size (e.g. 512M, 20G)")
	}
	return n * mult, nil
}

// FormatSize writes a byte count with the largest exact suffix.
func FormatSize(n int64) string {
	for _, u := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.m && n%u.m == 0 {
			return strconv.FormatInt(n/u.m, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}
