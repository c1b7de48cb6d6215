package main

import (
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor"
)

func mergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "merge the folders of an audit's shards into one audit folder",
		UsageText: progName + " merge SHARD_DIR... --out DIR",
		Description: wrapText("Merges the folders written by 'marginaudit audit --shard I/N' for every I into DIR, " +
			"which then holds what one 'marginaudit audit' of all the work writes, byte for byte (margins.csv, " +
			"summary.json, transitions.csv, confidence.csv, settings.json and parts/), and which 'report' reads " +
			"and a later audit resumes. The shards must have the same settings, be every shard once and have " +
			"finished; otherwise merge names the differing settings, the missing or doubled shards or the " +
			"unfinished units, and writes nothing. 'marginaudit status' shows the shards' progress."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "write the merged audit to `DIR` (a new folder)"},
			waitFlag(),
		},
		Action: runMerge,
	}
}

func runMerge(c *cli.Context) error {
	if !c.Args().Present() {
		return usagef("merge", "no shard folders given")
	}
	out := c.String("out")
	if out == "" {
		return usagef("merge", "--out is required")
	}
	lock, err := lockOutput(c, "merge", out)
	if err != nil {
		return err
	}
	defer lock.Close()
	sum, err := auditor.Merge(c.Args().Slice(), out)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "merged %d shards: %d checkpoints\n", c.Args().Len(), len(sum.Checkpoints))
	fmt.Fprintf(c.App.Writer, "wrote %s\n", filepath.Join(out, auditor.MarginsFile))
	return nil
}
