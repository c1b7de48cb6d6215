package main

import (
	"errors"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/internal/option"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

// maxThreads is the most onnxruntime threads per run that --threads takes:
// far more than any machine's cores, far fewer than a count that only
// exhausts memory (each thread has its own stack and scratch).
const maxThreads = 256

// checkGlobalFlags checks the flags every command shares, before any
// command runs.
func checkGlobalFlags(c *cli.Context) error {
	if n := c.Int("threads"); n < 0 || n > maxThreads {
		return usagef("", "--threads %d: want 0 (one per core) to %d", n, maxThreads)
	}
	if c.Bool(versionFlag.Name) && c.Args().Present() {
		return usagef("", "--version prints the version and takes no command; got %q", c.Args().First())
	}
	return nil
}

// flagNames maps the options a library validates (option.Error's Field:
// a settings.json name such as "max_iter", or a Config field path such as
// "Optim.LR") to the flags of one command that set them.
type flagNames map[string]string

// usage returns err as a usage error of cmd naming the flag and the values
// it allows when err holds an *option.Error; other errors are returned as
// they are.
func (f flagNames) usage(cmd string, err error) error {
	var oe *option.Error
	if !errors.As(err, &oe) {
		return err
	}
	name := oe.Field
	if flag, ok := f[oe.Field]; ok {
		name = "--" + flag
	}
	return usagef(cmd, "%s %v: want %s", name, oe.Value, oe.Want)
}

// checkDataName checks the --data flag of cmd against the known data sets
// and returns the canonical name.
func checkDataName(cmd, name string) (string, error) {
	info, err := dataset.Lookup(name)
	if err != nil {
		return "", usagef(cmd, "--data %s: want one of %s", strconv.Quote(name), joinNames(dataset.Names()))
	}
	return info.Name, nil
}

// joinNames writes names as "a, b or c".
func joinNames(names []string) string {
	switch len(names) {
	case 0:
		return ""
	case 1:
		return names[0]
	}
	s := names[0]
	for _, n := range names[1 : len(names)-1] {
		s += ", " + n
	}
	return s + " or " + names[len(names)-1]
}

// needs refuses the flags of cmd in flags that are set on the command line
// while what they depend on (named by what) is not given.
func needs(c *cli.Context, cmd, what string, flags ...string) error {
	for _, f := range flags {
		if c.IsSet(f) {
			return usagef(cmd, "--%s needs %s", f, what)
		}
	}
	return nil
}

// refuseZero refuses the flags of cmd given as 0 on the command line whose
// library option takes 0 for "the default": the flag's help shows that
// default, so an explicit 0 is a mistake, not a request for it.
func refuseZero(c *cli.Context, cmd string, flags ...string) error {
	for _, f := range flags {
		if !c.IsSet(f) {
			continue
		}
		switch v := c.Value(f).(type) {
		case int:
			if v == 0 {
				return usagef(cmd, "--%s 0: want a value ≥ 1", f)
			}
		case float64:
			if v == 0 {
				return usagef(cmd, "--%s 0: want a value > 0", f)
			}
		}
	}
	return nil
}
