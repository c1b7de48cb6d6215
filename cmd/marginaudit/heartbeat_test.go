package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/heartbeat"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// A real audit leaves a finished heartbeat that status reports; a shard
// that fails leaves a failed one, naming the error; and an audit whose
// heartbeat cannot be written still audits, warning of it once. A shard
// stopped by SIGTERM (a scheduler's time limit or eviction) says so at once,
// on stderr and in its heartbeat.
func TestAuditHeartbeat(t *testing.T) {
	orttest.Require(t)
	ckpts := copyModels(t, []string{"epoch-000.onnx", "epoch-001.onnx"})
	audit := func(out string, more ...string) (string, string, int) {
		return runCLI(t, append([]string{"audit", ckpts, "-q", "--threads", "1", "--out", out, "--images", models + "/mlp.x.npy", "--labels", arrays + "/y.npy", "-n", "4"}, more...)...)
	}

	t.Run("finished", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "shard")
		if _, stderr, code := audit(out, "--shard", "0/1"); code != 0 || stderr != "" {
			t.Fatalf("audit exited %d: %s", code, stderr)
		}
		b, err := heartbeat.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		host, _ := os.Hostname()
		if b.State != heartbeat.Finished || b.Host != host || b.PID != os.Getpid() || b.CheckpointsDone != 2 || b.Checkpoints != 2 || b.Error != "" ||
			b.Start.IsZero() || b.Written.Before(b.Start) || b.Step != "" {
			t.Errorf("heartbeat after the audit: %+v", b)
		}
		stdout, _, code := runCLI(t, "status", out)
		if row := strings.Fields(strings.Split(stdout, "\n")[1]); code != 0 || !slices.Equal(row[len(row)-2:], []string{"done", "finished"}) {
			t.Errorf("status exited %d, printed\n%s", code, stdout)
		}
	})

	t.Run("failed shard", func(t *testing.T) {
		broken := copyModels(t, []string{"epoch-000.onnx"}, "epoch-001.onnx")
		out := filepath.Join(t.TempDir(), "shard")
		_, stderr, code := runCLI(t, "audit", broken, "-q", "--threads", "1", "--out", out, "--images", models+"/mlp.x.npy", "--labels", arrays+"/y.npy", "--shard", "0/1")
		if code != 1 {
			t.Fatalf("audit with a broken checkpoint exited %d: %s", code, stderr)
		}
		b, err := heartbeat.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		if b.State != heartbeat.Failed || !strings.Contains(b.Error, "checkpoint epoch-001.onnx: ") || b.CheckpointsDone != 1 {
			t.Errorf("heartbeat after the failed audit: %+v", b)
		}
		if stdout, _, _ := runCLI(t, "status", out); !strings.Contains(stdout, "failed: checkpoint epoch-001.onnx: ") {
			t.Errorf("status printed\n%s", stdout)
		}
	})

	t.Run("unwritable", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "audit")
		// A folder where the heartbeat goes: no file can be renamed over it.
		if err := os.MkdirAll(filepath.Join(out, heartbeat.FileName, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, code := audit(out)
		if code != 0 || !strings.Contains(stdout, "wrote "+filepath.Join(out, auditor.MarginsFile)) {
			t.Fatalf("audit with an unwritable heartbeat exited %d: %s%s", code, stdout, stderr)
		}
		warning := progName + ": warning: heartbeat: "
		if strings.Count(stderr, warning) != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, heartbeat.FileName) {
			t.Errorf("stderr %q, want one warning %q naming the file", stderr, warning)
		}
		if _, err := os.Stat(filepath.Join(out, auditor.SummaryFile)); err != nil {
			t.Error(err)
		}
	})

	t.Run("terminated", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "shard")
		// 10,000 MNIST images per checkpoint and norm: seconds of work, of
		// which the test waits only for the start.
		c := startCLI(t, "audit", ckpts, "-q", "--threads", "1", "--out", out, "--data", "mnist", "-n", "10000", "--norm", "l2,linf", "--shard", "0/1")
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
			if b, err := heartbeat.Read(out); err == nil && b.State == heartbeat.Running {
				break
			}
			if !c.running() || time.Now().After(deadline) {
				t.Fatalf("no running heartbeat (audit running: %v); stderr %q", c.running(), c.stderr)
			}
		}
		c.signal(t, syscall.SIGTERM)
		want := progName + ": stopped: terminated signal received\n"
		if code := c.wait(); code != 1 || !strings.HasSuffix(c.stderr.String(), want) {
			t.Errorf("terminated audit: exit status %d, stderr %q; want 1 ending %q", code, c.stderr, want)
		}
		b, err := heartbeat.Read(out)
		if err != nil {
			t.Fatal(err)
		}
		if b.State != heartbeat.Failed || b.Error != "terminated signal received" {
			t.Errorf("heartbeat after SIGTERM: %+v; want failed, terminated signal received", b)
		}
	})
}
