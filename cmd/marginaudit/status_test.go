package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/heartbeat"
	"github.com/marginaudit/marginaudit/auditor/shard"
)

// writeShardFolder writes into dir the manifest of shard sp of two
// checkpoints of 500 test images, and settings.json, as an audit does at
// its first finished checkpoint, with the checkpoints done as finished,
// and the heartbeat b unless nil. With store false only the heartbeat is
// written: a shard that has not finished a checkpoint yet.
func writeShardFolder(t *testing.T, dir string, sp shard.Spec, store bool, b *heartbeat.Beat, done ...string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if store {
		items := []shard.Item{{Checkpoint: "epoch-002.onnx", Split: "test", Images: 500, Weight: 1}, {Checkpoint: "epoch-003.onnx", Split: "test", Images: 500, Weight: 1}}
		m, err := shard.NewManifest(items, sp)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, auditor.ShardFile))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := m.Write(f); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, auditor.SettingsFile), []byte("{}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, auditor.PartsDir), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, c := range done {
			if err := os.WriteFile(filepath.Join(dir, auditor.PartsDir, c+".csv"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b == nil {
		return
	}
	data, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, heartbeat.FileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// status tells, from each shard's heartbeat, a shard that runs from one
// that stopped, failed or finished, and calls a heartbeat stale after
// --stale.
func TestStatusHeartbeats(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	defer func(old func() time.Time) { statusClock = old }(statusClock)
	statusClock = func() time.Time { return now }
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	beat := func(state heartbeat.State, written time.Duration) *heartbeat.Beat {
		return &heartbeat.Beat{State: state, Host: "node7", PID: 4242, Start: ago(3 * time.Hour), Written: ago(written), Progress: ago(written),
			Checkpoint: "epoch-003.onnx", Checkpoints: 1, Split: "test", Step: "l2", Done: 340, Images: 500}
	}
	dir := t.TempDir()
	var dirs []string
	for i, tc := range []struct {
		name  string
		store bool
		beat  *heartbeat.Beat
		done  []string
	}{
		{"running", true, beat(heartbeat.Running, 4*time.Second), nil},
		{"stale", true, beat(heartbeat.Running, 2*time.Hour), nil},
		{"failed", true, &heartbeat.Beat{State: heartbeat.Failed, Host: "node8", PID: 7, Error: "checkpoint epoch-003.onnx: DeepFool l2 on test: out of memory"}, nil},
		{"finished", true, &heartbeat.Beat{State: heartbeat.Finished, Host: "node9", PID: 8}, []string{"epoch-002.onnx", "epoch-003.onnx"}},
		{"first", false, beat(heartbeat.Running, 12*time.Second), nil},
		{"old", true, nil, nil},
	} {
		writeShardFolder(t, filepath.Join(dir, tc.name), shard.Spec{Index: i, Count: 7}, tc.store, tc.beat, tc.done...)
		dirs = append(dirs, tc.name)
	}
	dirs = append(dirs, "unborn")
	goldens := map[string][]string{"status_heartbeats.stdout": nil, "status_heartbeats_stale.stdout": {"--stale", "3h"}}
	printed := map[string]string{}
	t.Run("in the folder", func(t *testing.T) { // relative names, for a table as wide at every run
		t.Chdir(dir)
		for golden, args := range goldens {
			stdout, stderr, code := runCLI(t, append(append([]string{"status"}, args...), dirs...)...)
			if code != 0 || stderr != "" {
				t.Errorf("status %v exited %d: %s", args, code, stderr)
			}
			printed[golden] = stdout
		}
	})
	for golden := range goldens {
		checkGolden(t, golden, printed[golden])
	}
	for i := range dirs {
		dirs[i] = filepath.Join(dir, dirs[i])
	}
	if _, stderr, code := runCLI(t, "status", "--stale", "0s", dirs[0]); code != 2 || !strings.Contains(stderr, "--stale 0s") {
		t.Errorf("status --stale 0s exited %d: %s; want 2 naming the flag", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(dirs[0], heartbeat.FileName), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, code := runCLI(t, "status", dirs[0])
	if want := fmt.Sprintf("unreadable heartbeat (heartbeat: %s: ", filepath.Join(dirs[0], heartbeat.FileName)); code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("status of a broken heartbeat exited %d, printed\n%s\nwant %q", code, stdout, want)
	}
}
