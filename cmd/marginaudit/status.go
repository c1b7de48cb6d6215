package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/heartbeat"
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
			"settings.json a shard that has not finished its first checkpoint.\n\n" +
			"The last column tells, from the heartbeat that an audit keeps in its folder (" + heartbeat.FileName + ", " +
			"rewritten every " + heartbeat.DefaultEvery.String() + "), whether the shard's process runs, and where: " +
			"\"running on HOST (pid P): CHECKPOINT SPLIT STEP DONE/IMAGES, 4 s ago\"; " +
			"\"stopped? last heartbeat 2 h ago on HOST\" when it has not written for longer than --stale " +
			"(killed, preempted, out of time; the clocks of the two machines must roughly agree); " +
			"\"failed: ERROR\"; or \"finished\"."),
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "stale", Value: heartbeat.DefaultStale,
				Usage: "call a running shard stopped when its heartbeat is older than this (such as 10m, 2h)"},
		},
		Action: runStatus,
	}
}

func runStatus(c *cli.Context) error {
	if !c.Args().Present() {
		return usagef("status", "no shard folders given")
	}
	stale := c.Duration("stale")
	if stale <= 0 {
		return usagef("status", "--stale %v: want a duration > 0, such as 10m", stale)
	}
	dirs := c.Args().Slice()
	now := statusClock()
	t := newTable()
	t.row("folder\tshard\tunits\tcheckpoints\timages\tstate\tprocess")
	var folders []*auditor.ShardFolder
	var manifests []*shard.Manifest
	var left []string
	var failed error
	for _, d := range dirs {
		process := describeProcess(d, now, stale)
		f, err := auditor.ReadShardFolder(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			state := "not started"
			if _, serr := os.Stat(d); serr == nil {
				state = "started, no checkpoint finished" // the store is made at the first
			}
			t.row("%s\t-\t-\t-\t-\t%s\t%s", d, state, process)
			continue
		case err != nil:
			t.row("%s\t-\t-\t-\t-\tunreadable\t%s", d, process)
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
		t.row("%s\t%s\t%d/%d\t%d/%d\t%d/%d\t%s\t%s", d, m.Shard, units, len(m.Units), ckpts, len(doneCkpt), images, m.Images(), state, process)
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

// statusClock is status's clock; tests set it.
var statusClock = time.Now

// describeProcess says what the heartbeat in the folder dir tells of the
// process that audits it (Beat.Describe), "-" when there is none (an
// audit not started, or written by a marginaudit without heartbeats), or
// why it cannot be read.
func describeProcess(dir string, now time.Time, stale time.Duration) string {
	b, err := heartbeat.Read(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "-"
	case err != nil:
		return fmt.Sprintf("unreadable heartbeat (%v)", err)
	}
	return b.Describe(now, stale)
}
