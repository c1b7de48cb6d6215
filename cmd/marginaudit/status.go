package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/shard"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "show what the shards of an audit have done and what remains",
		UsageText: progName + " status SHARD_DIR...",
		Description: wrapText("For each folder of 'marginaudit audit --shard', prints its shard and how many of its " +
			"units (checkpoint × split × image range), checkpoints and images are finished, then the units left. " +
			"It only reads the folders, without their lock, so it runs beside the audits, such as on a cluster's " +
			"login node while the job array runs. A folder that does not exist yet is a shard not started; one without " +
			"settings.json a shard that has not finished its first checkpoint."),
		Action: runStatus,
	}
}

func runStatus(c *cli.Context) error {
	if !c.Args().Present() {
		return usagef("status", "no shard folders given")
	}
	dirs := c.Args().Slice()
	t := newTable()
	t.row("folder\tshard\tunits\tcheckpoints\timages\tstate")
	var folders []*auditor.ShardFolder
	var manifests []*shard.Manifest
	var left []string
	var failed error
	for _, d := range dirs {
		f, err := auditor.ReadShardFolder(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			state := "not started"
			if _, serr := os.Stat(d); serr == nil {
				state = "started, no checkpoint finished" // the store is made at the first
			}
			t.row("%s\t-\t-\t-\t-\t%s", d, state)
			continue
		case err != nil:
			t.row("%s\t-\t-\t-\t-\tunreadable", d)
			failed = errors.Join(failed, fmt.Errorf("status: %w", err))
			continue
		}
		folders, manifests = append(folders, f), append(manifests, f.Manifest)
		m := f.Manifest
		units, images := 0, 0
		doneCkpt := map[string]bool{}
		for _, u := range m.Units {
			doneCkpt[u.Checkpoint] = f.Done(u)
			if f.Done(u) {
				units, images = units+1, images+u.Len()
			}
		}
		ckpts := 0
		for _, done := range doneCkpt {
			if done {
				ckpts++
			}
		}
		state := "done"
		if rem := f.Remaining(); len(rem) > 0 {
			state = fmt.Sprintf("%d of %d units left", len(rem), len(m.Units))
			var names []string
			for _, u := range rem {
				names = append(names, u.String())
			}
			left = append(left, fmt.Sprintf("left in %s: %s", d, strings.Join(names, ", ")))
		}
		t.row("%s\t%s\t%d/%d\t%d/%d\t%d/%d\t%s", d, m.Shard, units, len(m.Units), ckpts, len(doneCkpt), images, m.Images(), state)
	}
	if err := t.writeTo(c.App.Writer); err != nil {
		return err
	}
	for _, l := range left {
		fmt.Fprintln(c.App.Writer, l)
	}
	if failed != nil {
		return failed
	}
	switch err := shard.Cover(dirs, manifests); {
	case len(folders) < len(dirs):
	case err != nil:
		fmt.Fprintf(c.App.Writer, "these folders are not every shard once: %v\n", err)
	case len(left) == 0:
		fmt.Fprintf(c.App.Writer, "all %d shards are done: %s merge %s --out DIR\n", len(dirs), progName, strings.Join(dirs, " "))
	}
	return nil
}
