package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/audittest"
	"github.com/marginaudit/marginaudit/auditor/shard"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// mlpCheckpoints writes n copies of the MLP fixture as epoch-000.onnx,
// epoch-001.onnx, … into a new folder under dir and returns the folder.
func mlpCheckpoints(t *testing.T, dir string, n int) string {
	t.Helper()
	ckpts := filepath.Join(dir, fmt.Sprintf("ckpts-%d", n))
	if err := os.MkdirAll(ckpts, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		copyFile(t, filepath.Join(models, "mlp.onnx"), filepath.Join(ckpts, fmt.Sprintf("epoch-%03d.onnx", i)))
	}
	return ckpts
}

// sameAudit checks that the audit folder got holds the files of want,
// byte for byte, and no others.
func sameAudit(t *testing.T, want, got string) {
	t.Helper()
	audittest.Same(t, want, got, auditor.MarginsFile, auditor.SummaryFile, auditor.TransitionsFile, auditor.ConfidenceFile, auditor.SettingsFile)
}

// TestShardsMergeAsOneAudit audits MNIST images as three shards, split by
// checkpoints and, for a single checkpoint, by images: status follows the
// shards, merge refuses while one is missing and writes nothing, then
// writes what one audit writes, and report reads it.
func TestShardsMergeAsOneAudit(t *testing.T) {
	orttest.Require(t)
	requireMNIST(t)
	for _, tc := range []struct {
		name  string
		ckpts int
		units string // of shard 2, as status names them
	}{
		{"split by checkpoints", 3, "epoch-002.onnx test images 0-29"},
		{"one checkpoint split by images", 1, "epoch-000.onnx test images 20-29"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ckpts := mlpCheckpoints(t, dir, tc.ckpts)
			audit := func(out string, more ...string) []string {
				return append([]string{"audit", ckpts, "-q", "--threads", "1", "--data", "mnist", "--n", "30", "--out", out}, more...)
			}
			whole := filepath.Join(dir, "whole")
			if _, stderr, code := runCLI(t, audit(whole)...); code != 0 {
				t.Fatalf("audit exited %d: %s", code, stderr)
			}
			var shards []string
			for i := range 3 {
				shards = append(shards, filepath.Join(dir, fmt.Sprintf("shard-%d", i)))
			}
			for _, s := range shards[:2] {
				if _, stderr, code := runCLI(t, audit(s, "--shard", strings.TrimPrefix(filepath.Base(s), "shard-")+"/3")...); code != 0 {
					t.Fatalf("audit of %s exited %d: %s", s, code, stderr)
				}
			}

			stdout, stderr, code := runCLI(t, append([]string{"status"}, shards...)...)
			if code != 0 || !strings.Contains(stdout, shards[2]+"  -") || !strings.Contains(stdout, "not started") || !strings.Contains(stdout, "1/3    1/1") {
				t.Errorf("status exited %d, printed\n%s%s", code, stdout, stderr)
			}
			merged := filepath.Join(dir, "merged")
			_, stderr, code = runCLI(t, "merge", shards[0], shards[1], "--out", merged)
			if code != 1 || !strings.Contains(stderr, "shard 2/3 is missing ("+tc.units+")") {
				t.Errorf("merge without shard 2 exited %d: %s", code, stderr)
			}
			if _, err := os.Stat(merged); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused merge left %s", merged)
			}

			if _, stderr, code := runCLI(t, audit(shards[2], "--shard", "2/3")...); code != 0 {
				t.Fatalf("audit of shard 2 exited %d: %s", code, stderr)
			}
			stdout, _, _ = runCLI(t, append([]string{"status"}, shards...)...)
			if !strings.Contains(stdout, "all 3 shards are done") {
				t.Errorf("status of the finished shards printed\n%s", stdout)
			}
			if stdout, stderr, code := runCLI(t, append([]string{"merge", "--out", merged}, shards...)...); code != 0 || !strings.Contains(stdout, "merged 3 shards") {
				t.Fatalf("merge exited %d: %s%s", code, stdout, stderr)
			}
			sameAudit(t, whole, merged)
			if tc.ckpts == 1 {
				return
			}
			if _, stderr, code := runCLI(t, "report", "-q", merged, "--out", filepath.Join(dir, "report")); code != 0 {
				t.Errorf("report of the merged audit exited %d: %s", code, stderr)
			}
		})
	}
}

func TestShardUsageErrors(t *testing.T) {
	for _, v := range []string{shard.SlurmTaskID, shard.JobCompletionIndex} {
		t.Setenv(v, "")
	}
	ckpts := mlpCheckpoints(t, t.TempDir(), 1)
	for _, tc := range []struct {
		shard, want string
	}{
		{"auto", "neither SLURM_ARRAY_TASK_ID (Slurm job array) nor JOB_COMPLETION_INDEX"},
		{"3/3", "want 0 ≤ I < N"},
		{"1-3", "want I/N"},
	} {
		_, stderr, code := runCLI(t, "audit", ckpts, "--data", "mnist", "--out", filepath.Join(t.TempDir(), "a"), "--shard", tc.shard)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("--shard %s exited %d: %s", tc.shard, code, stderr)
		}
	}
}
