package auditor

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/audittest"
	"github.com/marginaudit/marginaudit/auditor/shard"
)

// auditShards audits cfg as n shards into folders under a temporary
// folder and returns them.
func auditShards(t *testing.T, cfg Config, n int) []string {
	t.Helper()
	root := t.TempDir()
	var dirs []string
	for i := range n {
		c := cfg
		c.Out, c.Shard = filepath.Join(root, "shard-"+string(rune('0'+i))), &shard.Spec{Index: i, Count: n}
		if _, err := Run(context.Background(), c, nil); err != nil {
			t.Fatalf("shard %d/%d: %v", i, n, err)
		}
		dirs = append(dirs, c.Out)
	}
	return dirs
}

// TestMergeEqualsOneAudit audits the same work in one process and as
// shards: the merged folder holds the same files, byte for byte, parts
// included, and a later audit into it finds every checkpoint finished.
func TestMergeEqualsOneAudit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ckpts  []string
		shards int
		pgd    bool
		save   bool // --save-adversarial: the perturbations are merged too
	}{
		{"3 checkpoints on 3 shards", []string{"epoch-1.onnx", "epoch-2.onnx", "epoch-3.onnx"}, 3, true, false},
		{"one checkpoint split by images", []string{"epoch-1.onnx"}, 3, false, true},
		{"2 checkpoints on 3 shards", []string{"epoch-1.onnx", "epoch-2.onnx"}, 3, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := runFixture(t, tc.ckpts...)
			if !tc.pgd {
				cfg.Settings.PGD = PGDSettings{}
			}
			cfg.SaveAdversarial = tc.save
			if _, err := Run(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			dirs := auditShards(t, cfg, tc.shards)
			merged := filepath.Join(t.TempDir(), "merged")
			if _, err := Merge(dirs, merged); err != nil {
				t.Fatal(err)
			}
			audittest.Same(t, cfg.Out, merged, MarginsFile, SummaryFile, TransitionsFile, ConfidenceFile, SettingsFile)

			p := &recordingProgress{}
			resumed := cfg
			resumed.Out = merged
			if _, err := Run(context.Background(), resumed, p); err != nil {
				t.Fatal(err)
			}
			if len(p.skipped) != len(tc.ckpts) || len(p.audited) != 0 {
				t.Errorf("audit of the merged folder skipped %v and audited %v; want all skipped", p.skipped, p.audited)
			}
		})
	}
}

// TestMergeRefuses checks that merge names a missing shard, a doubled one,
// unfinished units, differing settings and a shard short of a checkpoint's
// records, and writes nothing then.
func TestMergeRefuses(t *testing.T) {
	cfg := runFixture(t, "epoch-1.onnx", "epoch-2.onnx", "epoch-3.onnx")
	dirs := auditShards(t, cfg, 3)
	copyDir := func(t *testing.T, from string) string {
		to := filepath.Join(t.TempDir(), "copy")
		if err := os.CopyFS(to, os.DirFS(from)); err != nil {
			t.Fatal(err)
		}
		return to
	}
	for _, tc := range []struct {
		name  string
		dirs  func(t *testing.T) []string
		check func(error) bool
		want  string
	}{
		{"missing", func(*testing.T) []string { return []string{dirs[0], dirs[2]} },
			func(err error) bool { var e *shard.CoverError; return errors.As(err, &e) },
			"shard 1/3 is missing (epoch-2.onnx test images 0-3)"},
		{"doubled", func(t *testing.T) []string { return append(dirs[:3:3], copyDir(t, dirs[1])) },
			func(err error) bool { var e *shard.CoverError; return errors.As(err, &e) },
			"shard 1/3 is given 2 times"},
		{"unfinished", func(t *testing.T) []string {
			d := copyDir(t, dirs[2])
			if err := os.Remove(filepath.Join(d, PartsDir, "epoch-3.onnx.csv")); err != nil {
				t.Fatal(err)
			}
			return []string{dirs[0], dirs[1], d}
		}, func(err error) bool { var e *UnfinishedError; return errors.As(err, &e) },
			"has not finished epoch-3.onnx test images 0-3"},
		{"other settings", func(t *testing.T) []string {
			d := copyDir(t, dirs[1])
			path := filepath.Join(d, SettingsFile)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(b), `"seed": 1`, `"seed": 2`, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{dirs[0], d, dirs[2]}
		}, func(err error) bool { var e *ShardSettingsError; return errors.As(err, &e) },
			"seed: 1 in "},
		// Found only while epoch-3.onnx, the last checkpoint, is put
		// together: the check pass finds it before any is written.
		{"a checkpoint short of records", func(t *testing.T) []string {
			d := copyDir(t, dirs[2])
			path := filepath.Join(d, PartsDir, "epoch-3.onnx.csv")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			rows := strings.SplitAfter(string(b), "\n")
			if err := os.WriteFile(path, []byte(strings.Join(rows[:len(rows)-2], "")), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{dirs[0], dirs[1], d}
		}, func(error) bool { return true }, "records of epoch-3.onnx, but its units there take"},
		{"not a shard", func(t *testing.T) []string {
			whole := cfg
			whole.Out = filepath.Join(t.TempDir(), "whole")
			if _, err := Run(context.Background(), whole, nil); err != nil {
				t.Fatal(err)
			}
			return []string{whole.Out}
		}, func(error) bool { return true }, "not a shard"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "merged")
			_, err := Merge(tc.dirs(t), out)
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one saying %q", err, tc.want)
			}
			if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused merge wrote %s", out)
			}
		})
	}
}

// TestMergeOlderRefinedShards merges shards refined before the refined
// perturbations were saved (DeepFool's files only): alike, the merged
// folder has DeepFool's only, as a one-process audit of that time; mixed
// with shards that saved them, the merge is refused naming the one
// without and writes nothing.
func TestMergeOlderRefinedShards(t *testing.T) {
	cfg := runFixture(t, "epoch-1.onnx")
	cfg.Settings.PGD = PGDSettings{}
	cfg.SaveAdversarial = true
	dirs := auditShards(t, cfg, 2)
	older := func(t *testing.T, dir string) string {
		t.Helper()
		to := filepath.Join(t.TempDir(), "older")
		if err := os.CopyFS(to, os.DirFS(dir)); err != nil {
			t.Fatal(err)
		}
		refined, err := filepath.Glob(filepath.Join(to, AdversarialDir, "epoch-1.onnx", "*-refined*.npy"))
		if err != nil || len(refined) != 4 {
			t.Fatalf("refined perturbation files %v (%v), want 2 norms × 2 files", refined, err)
		}
		for _, f := range refined {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
		return to
	}
	a, b := older(t, dirs[0]), older(t, dirs[1])
	merged := filepath.Join(t.TempDir(), "merged")
	if _, err := Merge([]string{a, b}, merged); err != nil {
		t.Fatal(err)
	}
	for _, norm := range cfg.Settings.Norms {
		if _, err := ReadAdversarial(merged, "epoch-1.onnx", Test, norm, false); err != nil {
			t.Error(err)
		}
		if _, err := ReadAdversarial(merged, "epoch-1.onnx", Test, norm, true); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: refined perturbations merged from shards without them: %v", norm, err)
		}
	}
	out := filepath.Join(t.TempDir(), "mixed")
	if _, err := Merge([]string{dirs[0], b}, out); err == nil || !strings.Contains(err.Error(), b+" saved no refined perturbations of epoch-1.onnx") {
		t.Errorf("merge of shards with and without refined perturbations: %v", err)
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused merge wrote %s", out)
	}
}

// TestShardFolderKeepsItsShard checks that a shard's folder resumes only as
// that shard: the same shard again skips its finished checkpoint, another
// shard or the whole audit is refused, and a whole audit's folder refuses
// a shard.
func TestShardFolderKeepsItsShard(t *testing.T) {
	cfg := runFixture(t, "epoch-1.onnx", "epoch-2.onnx")
	dirs := auditShards(t, cfg, 2)

	again := cfg
	again.Out, again.Shard = dirs[0], &shard.Spec{Index: 0, Count: 2}
	p := &recordingProgress{}
	if _, err := Run(context.Background(), again, p); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.skipped, ",") != "epoch-1.onnx" || len(p.audited) != 0 {
		t.Errorf("shard 0/2 again skipped %v and audited %v; want epoch-1.onnx skipped", p.skipped, p.audited)
	}

	other := again
	other.Shard = &shard.Spec{Index: 1, Count: 2}
	if _, err := Run(context.Background(), other, nil); err == nil || !strings.Contains(err.Error(), "holds shard 0/2 of other work") {
		t.Errorf("shard 1/2 into shard 0/2's folder: err = %v", err)
	}
	whole := again
	whole.Shard = nil
	if _, err := Run(context.Background(), whole, nil); err == nil || !strings.Contains(err.Error(), "holds shard 0/2") {
		t.Errorf("the whole audit into shard 0/2's folder: err = %v", err)
	}
	whole.Out = filepath.Join(t.TempDir(), "whole")
	if _, err := Run(context.Background(), whole, nil); err != nil {
		t.Fatal(err)
	}
	other.Out = whole.Out
	if _, err := Run(context.Background(), other, nil); err == nil || !strings.Contains(err.Error(), "holds an audit of all the work") {
		t.Errorf("shard 1/2 into a whole audit's folder: err = %v", err)
	}

	f, err := ReadShardFolder(dirs[1])
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Remaining()) != 0 || f.Manifest.Shard != (shard.Spec{Index: 1, Count: 2}) {
		t.Errorf("shard 1/2: %v left, manifest %+v", f.Remaining(), f.Manifest)
	}
}

// TestShardWithPGDKeepsSplitsWhole checks that an audit with PGD refuses
// more shards than checkpoints × splits.
func TestShardWithPGDKeepsSplitsWhole(t *testing.T) {
	cfg := runFixture(t, "epoch-1.onnx")
	cfg.Shard = &shard.Spec{Index: 0, Count: 2}
	if _, err := Run(context.Background(), cfg, nil); !errors.Is(err, shard.ErrSpec) || !strings.Contains(err.Error(), "at most 1 shards") {
		t.Errorf("err = %v, want ErrSpec saying at most 1 shards", err)
	}
}
