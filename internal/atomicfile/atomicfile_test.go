package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// umask returns the process's umask (setting it back at once).
func umask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}

func TestWriteModeAndContents(t *testing.T) {
	for _, tt := range []struct {
		name  string
		perm  fs.FileMode
		old   bool // a file with mode 0600 is there before
		write func(name string, perm fs.FileMode) error
	}{
		{"bytes 0644 new", 0o644, false, func(n string, p fs.FileMode) error { return WriteFile(n, []byte("hello\n"), p) }},
		{"bytes 0644 over 0600", 0o644, true, func(n string, p fs.FileMode) error { return WriteFile(n, []byte("hello\n"), p) }},
		{"stream 0644 over 0600", 0o644, true, func(n string, p fs.FileMode) error {
			return Write(n, p, func(w io.Writer) error { _, err := io.WriteString(w, "hello\n"); return err })
		}},
		{"bytes 0600", 0o600, false, func(n string, p fs.FileMode) error { return WriteFile(n, []byte("hello\n"), p) }},
		{"stream 0755", 0o755, false, func(n string, p fs.FileMode) error {
			return Write(n, p, func(w io.Writer) error { _, err := io.WriteString(w, "hello\n"); return err })
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.txt")
			if tt.old {
				if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.write(path, tt.perm); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "hello\n" {
				t.Errorf("contents %q, %v; want %q", got, err, "hello\n")
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := tt.perm &^ umask(); fi.Mode().Perm() != want {
				t.Errorf("mode %v, want %v (perm %v less umask %v)", fi.Mode().Perm(), want, tt.perm, umask())
			}
			assertNoTemp(t, dir)
		})
	}
}

// A failing write leaves the old file and no temporary file, and the
// error names the file and wraps the cause.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.csv")
	if err := WriteFile(path, []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, strings.Repeat("x", 1<<17)) // past the buffer: bytes reach the temporary file
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), path) {
		t.Errorf("error %v, want one naming %s and wrapping %v", err, path, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Errorf("file holds %q after a failed write, want the old contents", got)
	}
	assertNoTemp(t, dir)
}

// A folder that does not exist is an error naming the file, not the
// temporary name.
func TestWriteMissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "f.bin")
	err := WriteFile(path, nil, 0o644)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), tempInfix) {
		t.Errorf("error %v, want one naming %s only and wrapping fs.ErrNotExist", err, path)
	}
}

func TestRemoveTemp(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"a.csv", ".hidden", "b.tmp-1"}
	for _, n := range append([]string{".a.csv.tmp-123", ".b.onnx.tmp-9"}, keep...) {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTemp(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, " ") != ".hidden a.csv b.tmp-1" {
		t.Errorf("left %q, want %q", got, []string{".hidden", "a.csv", "b.tmp-1"})
	}
}

func assertNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if IsTemp(e.Name()) {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func ExampleWriteFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "train.csv")
	if err := WriteFile(path, []byte("epoch,loss\n0,2.3\n"), 0o644); err != nil {
		panic(err)
	}
	data, _ := os.ReadFile(path)
	os.Stdout.Write(data)
	// Output:
	// epoch,loss
	// 0,2.3
}
