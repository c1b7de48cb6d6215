package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	for _, f := range []string{auditor.MarginsFile, auditor.SummaryFile, auditor.TransitionsFile, auditor.SettingsFile, auditor.ConfidenceFile} {
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

// TestMain lets a test run the program in a child process (the test binary
// itself, with MARGINAUDIT_RUN_MAIN=1), so that it can be killed.
func TestMain(m *testing.M) {
	if os.Getenv("MARGINAUDIT_RUN_MAIN") == "1" {
		os.Exit(exitCode(run(os.Args, os.Stdout, os.Stderr)))
	}
	os.Exit(m.Run())
}

// TestAuditKilledAndResumed kills an audit with SIGKILL as soon as its first
// checkpoint is committed, reruns the same command, and compares the result
// with an audit that was never interrupted: nothing lost, nothing
// duplicated, byte for byte.
func TestAuditKilledAndResumed(t *testing.T) {
	orttest.Require(t)
	requireMNIST(t)
	dir := t.TempDir()
	ckpts := filepath.Join(dir, "ckpts")
	if err := os.MkdirAll(ckpts, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"epoch-000.onnx", "epoch-001.onnx", "epoch-002.onnx", "epoch-003.onnx"} {
		copyFile(t, "../../testdata/models/mlp.onnx", filepath.Join(ckpts, name))
	}
	audit := func(out string) []string {
		return []string{"audit", ckpts, "-q", "--threads", "1", "--data", "mnist", "--n", "300", "--out", out}
	}
	whole, killed := filepath.Join(dir, "whole"), filepath.Join(dir, "killed")
	if _, stderr, code := runCLI(t, audit(whole)...); code != 0 {
		t.Fatalf("uninterrupted audit exited %d: %s", code, stderr)
	}

	cmd := exec.Command(os.Args[0], audit(killed)...)
	cmd.Env = append(os.Environ(), "MARGINAUDIT_RUN_MAIN=1")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		parts, _ := filepath.Glob(filepath.Join(killed, auditor.PartsDir, "*.csv"))
		if len(parts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the audit committed no checkpoint in 2 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	parts, _ := filepath.Glob(filepath.Join(killed, auditor.PartsDir, "*.csv"))
	if len(parts) >= 4 {
		t.Skip("the audit finished before it could be killed")
	}
	if _, stderr, code := runCLI(t, audit(killed)...); code != 0 {
		t.Fatalf("resumed audit exited %d: %s", code, stderr)
	}
	for _, f := range []string{auditor.MarginsFile, auditor.TransitionsFile, auditor.ConfidenceFile} {
		a, _ := os.ReadFile(filepath.Join(whole, f))
		b, _ := os.ReadFile(filepath.Join(killed, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s after kill and resume differs from the uninterrupted audit's (%d vs %d bytes)", f, len(b), len(a))
		}
	}
}
