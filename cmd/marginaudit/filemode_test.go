package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/marginaudit/marginaudit/internal/atomicfile"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// TestFileModes runs every command that writes files on tiny inputs under
// the umask 027 and checks that each file written has mode 0644 less the
// umask, 0640 (the old writers left checkpoints, optimizer state, train.csv
// and grad outputs at 0600 whatever the umask), and that no temporary file
// is left behind.
func TestFileModes(t *testing.T) {
	orttest.Require(t)
	requireMNIST(t)
	const mask = 0o027
	old := syscall.Umask(mask)
	defer syscall.Umask(old)

	dir := t.TempDir()
	ckpts, audit, rep := filepath.Join(dir, "ckpts"), filepath.Join(dir, "audit"), filepath.Join(dir, "report")
	for _, d := range []string{"grad", "jacobian"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"train", "-q", "--data", "mnist", "--arch", "mlp", "--hidden", "8", "--epochs", "1",
			"--train-limit", "200", "--test-limit", "50", "--out", ckpts},
		{"audit", ckpts, "-q", "--data", "mnist", "--split", "test", "--n", "5", "--out", audit, "--pgd-eps", "0.05", "--pgd-steps", "2"},
		{"report", audit, "-q", "--out", rep},
		{"grad", models + "/cnn.onnx", "--out", filepath.Join(dir, "grad", "g.onnx"), "--jacobian"},
		{"jacobian", models + "/cnn.onnx", "--input", models + "/cnn.x.npy", "--out", filepath.Join(dir, "jacobian", "j.npy"), "--classes", "3"},
	} {
		if _, stderr, code := runCLI(t, args...); code != 0 {
			t.Fatalf("%s exited %d: %s", args[0], code, stderr)
		}
	}

	want := fs.FileMode(0o644 &^ mask)
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		if atomicfile.IsTemp(d.Name()) {
			t.Errorf("temporary file left: %s", path)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// train: 2 checkpoints, 2 states, train.csv; jacobian: J and its classes;
	// grad: 1; audit and report: more.
	if files < 10 {
		t.Errorf("the commands wrote %d files, want at least 10", files)
	}
}
