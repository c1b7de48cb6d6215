package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

// requireMNIST stops the test when MNIST is missing: a failure in CI (make
// test installs it), a skip elsewhere.
func requireMNIST(t *testing.T) {
	t.Helper()
	if _, err := dataset.SearchPath("mnist", ""); err != nil {
		if orttest.InCI() {
			t.Fatalf("MNIST is required in CI: %v", err)
		}
		t.Skipf("MNIST not available: %v", err)
	}
}

// TestTrainAuditPipeline trains a small MLP for two epochs, audits its
// three checkpoints, and audits again: the second run skips every
// checkpoint and leaves margins.csv as it was.
func TestTrainAuditPipeline(t *testing.T) {
	orttest.Require(t)
	requireMNIST(t)
	dir := t.TempDir()
	ckpts, out := filepath.Join(dir, "ckpts"), filepath.Join(dir, "audit")
	stdout, stderr, code := runCLI(t, "train", "-q", "--data", "mnist", "--arch", "mlp", "--hidden", "32",
		"--epochs", "2", "--train-limit", "2000", "--test-limit", "200", "--out", ckpts)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "epochs 0–2") {
		t.Errorf("train printed %q", stdout)
	}
	args := []string{"audit", ckpts, "-q", "--data", "mnist", "--n", "20", "--out", out, "--pgd-eps", "0.05", "--pgd-steps", "5"}
	stdout, stderr, code = runCLI(t, args...)
	if code != 0 {
		t.Fatalf("audit exited %d: %s", code, stderr)
	}
	for _, f := range []string{auditor.MarginsFile, auditor.SummaryFile, auditor.TransitionsFile, auditor.SettingsFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("audit wrote no %s: %v", f, err)
		}
	}
	if !strings.Contains(stdout, "mean margin") {
		t.Errorf("audit printed no summary table: %q", stdout)
	}
	before, err := os.ReadFile(filepath.Join(out, auditor.MarginsFile))
	if err != nil {
		t.Fatal(err)
	}
	if rows := strings.Count(string(before), "\n"); rows != 1+3*20*2 {
		t.Errorf("margins.csv has %d lines, want a header and 120 rows", rows)
	}
	_, stderr, code = runCLI(t, append(args[:len(args):len(args)], "-q=false")...)
	if code != 0 || strings.Count(stderr, "already audited") != 3 {
		t.Errorf("second audit exited %d and said %q, want 3 checkpoints skipped", code, stderr)
	}
	after, _ := os.ReadFile(filepath.Join(out, auditor.MarginsFile))
	if string(after) != string(before) {
		t.Error("rerunning the audit changed margins.csv")
	}
}
