package dirlock

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A file opened before another lock's Close removed it is no longer the
// lock file, nor once a new one is created under its name: the lock taken
// on it must be given up.
func TestIsLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check := func(when string, want bool) {
		t.Helper()
		if got, err := isLockFile(f, path); err != nil || got != want {
			t.Errorf("%s: isLockFile = %v, %v; want %v", when, got, err, want)
		}
	}
	check("open", true)
	os.Remove(path)
	check("removed", false)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	check("replaced", false)
}

func TestParseHolder(t *testing.T) {
	long := strings.Repeat("é", maxCommand)
	tests := []struct {
		rec  string
		pid  int
		cmd  string
		okay bool
	}{
		{formatHolder(42, "marginaudit train --out x"), 42, "marginaudit train --out x", true},
		{formatHolder(7, "a\nb\rc"), 7, "a b c", true},
		{formatHolder(7, long), 7, long[:maxCommand] + "…", true},
		{"42\n", 0, "", false},               // the command not yet written
		{"42\nmarginaudit tr", 0, "", false}, // half written
		{"", 0, "", false},
		{"-3\nx\n", 0, "", false},
		{"pid\nx\n", 0, "", false},
	}
	for _, tt := range tests {
		pid, cmd, ok := parseHolder(tt.rec)
		if pid != tt.pid || cmd != tt.cmd || ok != tt.okay {
			t.Errorf("parseHolder(%q) = %d, %q, %v; want %d, %q, %v", tt.rec, pid, cmd, ok, tt.pid, tt.cmd, tt.okay)
		}
	}
}

// FuzzParseHolder checks that parseHolder never panics on any record, and
// reads back what formatHolder wrote: the PID, and the command on one line
// of at most maxCommand bytes (and an ellipsis).
func FuzzParseHolder(f *testing.F) {
	f.Add("42\nmarginaudit train\n", 42, "marginaudit audit ckpts --out a")
	f.Add("42\n", 1, "a\nb")
	f.Add("", 1, "")
	f.Fuzz(func(t *testing.T, rec string, pid int, cmd string) {
		parseHolder(rec)
		if pid <= 0 {
			return
		}
		rec = formatHolder(pid, cmd)
		gotPID, gotCmd, ok := parseHolder(rec)
		if !ok || gotPID != pid || strings.ContainsAny(gotCmd, "\r\n") || len(gotCmd) > maxCommand+len("…") {
			t.Errorf("formatHolder(%d, %q) = %q reads back as %d, %q, %v", pid, cmd, rec, gotPID, gotCmd, ok)
		}
	})
}
