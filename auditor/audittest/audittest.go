// Package audittest compares audit folders in tests: a merge of shards, a
// resumed audit, each against one uninterrupted audit, byte for byte.
package audittest

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/heartbeat"
)

// ReadTree returns the content of every file under dir by its path
// relative to dir, but for the heartbeat, which tells how the audit ran,
// not what it found.
func ReadTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path == filepath.Join(dir, heartbeat.FileName) {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// Same checks that the folder got holds the files of want, byte for byte,
// and no others, and that want holds each of the files named in need.
func Same(t testing.TB, want, got string, need ...string) {
	t.Helper()
	w, g := ReadTree(t, want), ReadTree(t, got)
	for _, f := range need {
		if w[f] == "" {
			t.Errorf("%s has no %s", want, f)
		}
	}
	for name, data := range w {
		if g[name] != data {
			t.Errorf("%s differs from %s's (%d vs %d bytes):\n%s\nwant\n%s", filepath.Join(got, name), want, len(g[name]), len(data), clip(g[name]), clip(data))
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("%s has %s, %s has not", got, name, want)
		}
	}
}

// clip shortens a file's content for an error message.
func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}
