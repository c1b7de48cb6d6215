package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// Every bad flag value and combination is a usage error (exit status 2)
// naming the flag, found before any work: nothing is loaded, read or
// written, and the --out folder is not even created. Each base command
// line is valid and does work that writes --out (auditing cnn.onnx on its
// 8 images; training or studying a few MNIST images), so a check that
// came after the work began would leave the folder behind, or fail with
// another status where the data is missing.
func TestFlagsValidatedFirst(t *testing.T) {
	audit := func(out string, extra ...string) []string {
		return append([]string{"audit", models + "/cnn.onnx", "-q", "--out", out,
			"--images", models + "/cnn.x.npy", "--labels", arrays + "/y.npy"}, extra...)
	}
	auditData := func(out string, extra ...string) []string {
		return append([]string{"audit", models + "/cnn.onnx", "-q", "--out", out, "--data", "mnist", "--n", "4"}, extra...)
	}
	trainArgs := func(out string, extra ...string) []string {
		return append([]string{"train", "-q", "--data", "mnist", "--arch", "mlp", "--hidden", "8", "--out", out,
			"--epochs", "1", "--train-limit", "64", "--test-limit", "64"}, extra...)
	}
	study := func(out string, extra ...string) []string {
		return append([]string{"study", "-q", "--data", "mnist", "--hidden", "8", "--out", out,
			"--epochs", "1", "--train-limit", "64", "--test-limit", "64", "--n", "4"}, extra...)
	}
	tests := []struct {
		args func(out string, extra ...string) []string
		bad  []string // the bad flags
		flag string   // the flag the message names
	}{
		// audit: the attacks' parameters.
		{audit, []string{"--pgd-eps", "-1"}, "--pgd-eps"},
		{audit, []string{"--pgd-eps", "nan"}, "--pgd-eps"},
		{audit, []string{"--pgd-eps", "0.1,0.1"}, "--pgd-eps"},
		{audit, []string{"--pgd-eps", "0.1", "--pgd-steps", "0"}, "--pgd-steps"},
		{audit, []string{"--pgd-eps", "0.1", "--pgd-step", "-0.01"}, "--pgd-step"},
		{audit, []string{"--pgd-eps", "0.1", "--pgd-step", "inf"}, "--pgd-step"},
		{audit, []string{"--pgd-eps", "0.1", "--pgd-norm", "l1"}, "--pgd-norm"},
		{audit, []string{"--pgd-eps", "0.1", "--pgd-norm", "linf,linf"}, "--pgd-norm"},
		{audit, []string{"--pgd-steps", "5"}, "--pgd-steps"},
		{audit, []string{"--pgd-norm", "l2"}, "--pgd-norm"},
		{audit, []string{"--batch", "-3"}, "--batch"},
		{audit, []string{"--batch", "0"}, "--batch"},
		{audit, []string{"--candidates", "1"}, "--candidates"},
		{audit, []string{"--candidates", "-2"}, "--candidates"},
		{audit, []string{"--overshoot", "-1"}, "--overshoot"},
		{audit, []string{"--overshoot", "nan"}, "--overshoot"},
		{audit, []string{"--overshoot", "inf"}, "--overshoot"},
		{audit, []string{"--max-iter", "-1"}, "--max-iter"},
		{audit, []string{"--max-iter", "0"}, "--max-iter"},
		{audit, []string{"--retries", "-1"}, "--retries"},
		{audit, []string{"--refine", "--refine-steps", "0"}, "--refine-steps"},
		{audit, []string{"--refine", "--refine-steps", "-2"}, "--refine-steps"},
		{audit, []string{"--refine-steps", "10"}, "--refine-steps"},
		{study, []string{"--refine", "--refine-steps", "0"}, "--refine-steps"},
		{study, []string{"--refine-steps", "10"}, "--refine-steps"},
		{audit, []string{"--certify", "--certify-steps", "0"}, "--certify-steps"},
		{audit, []string{"--certify", "--certify-steps", "61"}, "--certify-steps"},
		{audit, []string{"--certify-steps", "8"}, "--certify-steps"},
		{study, []string{"--certify", "--certify-steps", "-1"}, "--certify-steps"},
		{study, []string{"--certify-steps", "8"}, "--certify-steps"},
		{audit, []string{"--norm", "l2,l2"}, "--norm"},
		{audit, []string{"--norm", "l1"}, "--norm"},
		// audit: the images and their convention.
		{audit, []string{"--split", "test,test"}, "--split"},
		{auditData, []string{"--split", "test,test"}, "--split"},
		{auditData, []string{"--split", "val"}, "--split"},
		{auditData, []string{"--n", "0"}, "--n"},
		{audit, []string{"--n", "-5"}, "--n"},
		{audit, []string{"--sample", "last"}, "--sample"},
		{audit, []string{"--data-dir", "/tmp"}, "--data-dir"},
		{auditData, []string{"--data", "imagenet"}, "--data"},
		{audit, []string{"--range", "0,inf"}, "--range"},
		{audit, []string{"--range", "1,0"}, "--range"},
		{audit, []string{"--std", "-1"}, "--std"},
		{audit, []string{"--mean", "0.5", "--std", "0"}, "--std"},
		{audit, []string{"--mean", "0.5", "--std", "-1"}, "--std"},
		{audit, []string{"--mean", "0.1,0.2,0.3", "--std", "0.2,0.3"}, "--std"},
		{audit, []string{"--mean", "nan", "--std", "1"}, "--mean"},
		{audit, []string{"--mean", "0.5"}, "--std"},
		{audit, []string{"--layout", "chw"}, "--layout"},
		{audit, []string{"--threads", "100000"}, "--threads"},
		{audit, []string{"--threads", "-1"}, "--threads"},
		// train.
		{trainArgs, []string{"--epochs", "-1"}, "--epochs"},
		{trainArgs, []string{"--opt", "rmsprop"}, "--opt"},
		{trainArgs, []string{"--arch", "resnet"}, "--arch"},
		{trainArgs, []string{"--data", "imagenet"}, "--data"},
		{trainArgs, []string{"--batch", "-3"}, "--batch"},
		{trainArgs, []string{"--batch", "0"}, "--batch"},
		{trainArgs, []string{"--lr", "0"}, "--lr"},
		{trainArgs, []string{"--adv", "pgd", "--adv-frac", "0"}, "--adv-frac"},
		{trainArgs, []string{"--lr", "-1"}, "--lr"},
		{trainArgs, []string{"--lr", "nan"}, "--lr"},
		{trainArgs, []string{"--lr", "inf"}, "--lr"},
		{trainArgs, []string{"--momentum", "0.9"}, "--momentum"},
		{trainArgs, []string{"--opt", "sgd", "--momentum", "1"}, "--momentum"},
		{trainArgs, []string{"--weight-decay", "-1"}, "--weight-decay"},
		{trainArgs, []string{"--schedule", "linear"}, "--schedule"},
		{trainArgs, []string{"--train-limit", "-1"}, "--train-limit"},
		{trainArgs, []string{"--test-limit", "-1"}, "--test-limit"},
		{trainArgs, []string{"--hidden", "0"}, "--hidden"},
		{trainArgs, []string{"--arch", "cnn", "--channels", "4,4,4,4,4,4"}, "--channels"},
		{trainArgs, []string{"--adv", "pgd", "--adv-eps", "-1"}, "--adv-eps"},
		{trainArgs, []string{"--adv", "pgd", "--adv-eps", "nan"}, "--adv-eps"},
		{trainArgs, []string{"--adv", "pgd", "--adv-step", "-0.1"}, "--adv-step"},
		{trainArgs, []string{"--adv", "pgd", "--adv-steps", "0"}, "--adv-steps"},
		{trainArgs, []string{"--adv", "pgd", "--adv-frac", "2"}, "--adv-frac"},
		{trainArgs, []string{"--adv-frac", "0.3"}, "--adv-frac"},
		{trainArgs, []string{"--adv", "fgsm"}, "--adv"},
		{trainArgs, []string{"--threads", "100000"}, "--threads"},
		// study.
		{study, []string{"--n", "0"}, "--n"},
		{study, []string{"--epochs", "-1"}, "--epochs"},
		{study, []string{"--lr", "-1"}, "--lr"},
		{study, []string{"--batch", "-3"}, "--batch"},
		{study, []string{"--lr", "0"}, "--lr"},
		{study, []string{"--arch", "resnet"}, "--arch"},
		{study, []string{"--data", "imagenet"}, "--data"},
		{study, []string{"--adv-steps", "0"}, "--adv-steps"},
		{study, []string{"--no-adv", "--adv-steps", "3"}, "--adv-steps"},
		{study, []string{"--train-limit", "-1"}, "--train-limit"},
		{study, []string{"--threads", "100000"}, "--threads"},
	}
	for _, tt := range tests {
		out := filepath.Join(t.TempDir(), "out")
		args := tt.args(out, tt.bad...)
		t.Run(args[0]+" "+strings.Join(tt.bad, " "), func(t *testing.T) {
			stdout, stderr, code := runCLI(t, args...)
			if code != 2 {
				t.Errorf("exit status %d, want 2; stderr:\n%s", code, stderr)
			}
			if first, _, _ := strings.Cut(stderr, "\n"); !strings.Contains(first, tt.flag) {
				t.Errorf("message %q does not name %s", first, tt.flag)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("the refused command created --out %s (%v)", out, err)
			}
		})
	}
}

// The base audit of TestFlagsValidatedFirst works and writes its folder:
// were a bad flag found only after the work began, the folder would exist.
func TestFlagsValidatedFirstBase(t *testing.T) {
	orttest.Require(t)
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, code := runCLI(t, "audit", models+"/cnn.onnx", "-q", "--threads", "1", "--out", out,
		"--images", models+"/cnn.x.npy", "--labels", arrays+"/y.npy", "--max-iter", "5", "--retries", "0")
	if code != 0 {
		t.Fatalf("exit status %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "margins.csv")); err != nil {
		t.Error(err)
	}
}

// Every flag a table names exists on its command (or is global).
func TestFlagNamesExist(t *testing.T) {
	app := newApp(nil, nil)
	for cmd, names := range map[string]flagNames{"audit": auditFlags, "train": trainFlags, "study": studyFlags} {
		have := flagArity(append(app.Command(cmd).Flags, app.Flags...))
		for field, flag := range names {
			if _, ok := have[flag]; !ok {
				t.Errorf("%s: %s names --%s, which %s does not have", cmd, field, flag, cmd)
			}
		}
	}
}
