package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// requireSlurm stops the test unless sbatch can reach a Slurm controller
// (.ci/slurm-up starts one on this machine): a failure when CI is set and
// MARGINAUDIT_SLURM=1 says that CI started one, a skip otherwise.
func requireSlurm(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("sbatch")
	if err == nil {
		if out, serr := exec.Command("sinfo", "-h", "-o", "%t").CombinedOutput(); serr != nil {
			err = fmt.Errorf("sinfo: %v: %s", serr, out)
		}
	}
	if err == nil {
		return
	}
	if orttest.InCI() && os.Getenv("MARGINAUDIT_SLURM") == "1" {
		t.Fatalf("a Slurm cluster is required (MARGINAUDIT_SLURM=1): %v", err)
	}
	t.Skipf("no Slurm cluster (%v); .ci/slurm-up starts one, MARGINAUDIT_SLURM=1 makes its absence a failure in CI", err)
}

// TestSlurmArray submits an audit of three checkpoints as a Slurm job array
// of three tasks and the merge job that depends on it, with
// deploy/slurm/submit.sh, waits for both, and compares the merged folder
// with one process's audit byte for byte. The jobs run this test binary as
// the program (MARGINAUDIT_RUN_MAIN, see TestMain).
func TestSlurmArray(t *testing.T) {
	requireSlurm(t)
	orttest.Require(t)
	requireMNIST(t)
	dir := t.TempDir()
	ckpts := mlpCheckpoints(t, dir, 3)
	const flags = "--data mnist --n 30"
	whole := filepath.Join(dir, "whole")
	if _, stderr, code := runCLI(t, append([]string{"audit", ckpts, "-q", "--threads", "1", "--out", whole}, strings.Fields(flags)...)...); code != 0 {
		t.Fatalf("audit exited %d: %s", code, stderr)
	}
	program, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	submit := exec.Command("../../deploy/slurm/submit.sh")
	submit.Env = append(os.Environ(), "MARGINAUDIT="+program, "MARGINAUDIT_RUN_MAIN=1",
		"CHECKPOINTS="+ckpts, "WORK="+work, "SHARDS=3", "AUDIT_FLAGS="+flags)
	out, err := submit.CombinedOutput()
	var array, merge string
	if _, serr := fmt.Sscanf(string(out), "array %s merge %s", &array, &merge); err != nil || serr != nil {
		t.Fatalf("submit.sh: %v: %s", err, out)
	}
	logs := func() string {
		var b strings.Builder
		files, _ := filepath.Glob(filepath.Join(work, "logs", "*"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			fmt.Fprintf(&b, "--- %s\n%s", f, data)
		}
		return b.String()
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		q, err := exec.Command("squeue", "-h", "-j", array+","+merge, "-o", "%i %T %r").Output()
		if err != nil {
			t.Fatalf("squeue: %v", err)
		}
		if strings.TrimSpace(string(q)) == "" {
			break
		}
		if time.Now().After(deadline) {
			exec.Command("scancel", array, merge).Run()
			t.Fatalf("jobs %s and %s still queued after 5 minutes:\n%s%s", array, merge, q, logs())
		}
		time.Sleep(time.Second)
	}
	merged := filepath.Join(work, "merged")
	if _, err := os.Stat(filepath.Join(merged, "margins.csv")); err != nil {
		t.Fatalf("the merge job wrote no audit (%v); logs:\n%s", err, logs())
	}
	sameAudit(t, whole, merged)
	stdout, _, _ := runCLI(t, "status", filepath.Join(work, "shard-0"), filepath.Join(work, "shard-1"), filepath.Join(work, "shard-2"))
	if !strings.Contains(stdout, "all 3 shards are done") {
		t.Errorf("status after the array:\n%s", stdout)
	}
}
