package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/internal/dirlock"
)

// waitFlag is the --wait flag of the commands that lock their output
// folder with lockOutput.
func waitFlag() cli.Flag {
	return &cli.BoolFlag{Name: "wait", Usage: "wait for another marginaudit process that writes the same folder"}
}

// lockOutput locks the output folder dir of the command cmd before it
// writes there, so that two processes never write one folder together.
// When another process holds it, lockOutput refuses at once, with a hint
// to use --wait, or with --wait says so on stderr (unless -q) and waits
// until the holder is gone or the command is interrupted. The caller
// closes the lock when it is done.
func lockOutput(c *cli.Context, cmd, dir string) (*dirlock.Lock, error) {
	l, err := dirlock.TryLock(dir)
	var held *dirlock.HeldError
	if errors.As(err, &held) && c.Bool("wait") {
		if !c.Bool("quiet") {
			fmt.Fprintf(c.App.ErrWriter, "%s: %v; waiting until it is done\n", progName, held)
		}
		l, err = dirlock.Wait(c.Context, dir)
	}
	switch {
	case errors.As(err, &held):
		return nil, withHint(fmt.Errorf("%s: %w", cmd, err), "add --wait to start once that process is done")
	case err != nil:
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return l, nil
}
