package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A resumed run whose epochs are all trained says so instead of claiming
// to train epochs 2–1.
func TestTrainResumeFinished(t *testing.T) {
	requireMNIST(t)
	out := filepath.Join(t.TempDir(), "ckpts")
	args := []string{"train", "--data", "mnist", "--arch", "mlp", "--hidden", "16", "--epochs", "1",
		"--train-limit", "200", "--test-limit", "50", "--threads", "1", "--resume", "--out", out}
	if stdout, stderr, code := runCLI(t, args...); code != 0 {
		t.Fatalf("first run exited %d: %s%s", code, stdout, stderr)
	}
	stdout, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("second run exited %d: %s", code, stderr)
	}
	if want := "nothing to train: " + filepath.Join(out, "epoch-*.onnx") + " holds epochs 0–1\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if !strings.Contains(stderr, "every epoch up to 1 is already trained") || strings.Contains(stderr, "resuming") {
		t.Errorf("stderr %q, want it to say every epoch is trained", stderr)
	}
}
