package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/heartbeat"
)

// runAuditor runs the audit cfg with progress p, keeping a heartbeat in its
// folder (see package heartbeat) for `status`; the caller holds the lock
// of the folder or of one above it, and runAuditor creates the folder
// when it is missing. A heartbeat that cannot be written is warned of
// once and does not fail the audit. A failed run that leaves no audit
// behind removes its heartbeat too, so that it writes nothing, unless it
// is a shard's, whose failure status reports.
func runAuditor(c *cli.Context, cfg auditor.Config, p *auditProgress) (*auditor.Summary, error) {
	_, err := os.Stat(cfg.Out)
	created := errors.Is(err, fs.ErrNotExist)
	if created {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return nil, fmt.Errorf("audit directory: %w", err)
		}
	}
	hb := heartbeat.Start(cfg.Out, heartbeat.Options{OnError: func(err error) {
		p.bar.warn("%v; the audit goes on, but status cannot follow it", err)
	}})
	sum, err := auditor.Run(c.Context, cfg, &heartbeatProgress{Progress: p, hb: hb})
	if err != nil && cfg.Shard == nil && !holdsAudit(cfg.Out) {
		if rerr := hb.Remove(); rerr != nil {
			p.bar.warn("%v", rerr)
		}
		if created {
			os.Remove(cfg.Out) // only if empty: a failed run leaves nothing
		}
		return sum, err
	}
	ended := err
	if ended != nil && c.Context.Err() != nil {
		ended = context.Cause(c.Context) // "interrupt signal received"
	}
	hb.Finish(ended)
	return sum, err
}

// holdsAudit reports whether the folder dir holds an audit's settings.
func holdsAudit(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, auditor.SettingsFile))
	return !errors.Is(err, fs.ErrNotExist)
}

// heartbeatProgress tells an audit's progress to its heartbeat as well.
type heartbeatProgress struct {
	auditor.Progress
	hb *heartbeat.Writer
}

func (p *heartbeatProgress) Checkpoint(c auditor.Checkpoint, i, n, work int) {
	p.hb.Checkpoints(n)
	p.hb.Checkpoint(c.Name)
	p.Progress.Checkpoint(c, i, n, work)
}

func (p *heartbeatProgress) Stage(c auditor.Checkpoint, split auditor.Split, step string, images int) {
	p.hb.Stage(string(split), step, images)
	p.Progress.Stage(c, split, step, images)
}

func (p *heartbeatProgress) Done(n int) {
	p.hb.Done(n)
	p.Progress.Done(n)
}

func (p *heartbeatProgress) Finished(c auditor.Checkpoint, skipped bool, err error, elapsed time.Duration) {
	if err == nil {
		p.hb.CheckpointDone()
	}
	p.Progress.Finished(c, skipped, err, elapsed)
}
