package ort_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// unsetenv unsets key for the duration of the test.
func unsetenv(t *testing.T, key string) {
	t.Setenv(key, "") // restores the old value at the end of the test
	os.Unsetenv(key)
}

func TestLibraryPathFromEnv(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "libonnxruntime.so")
	if err := os.WriteFile(lib, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(ort.EnvLibrary, lib)
	got, err := ort.LibraryPath()
	if err != nil || got != lib {
		t.Errorf("LibraryPath() = %q, %v; want %q, nil", got, err, lib)
	}
}

func TestLibraryPathFromCache(t *testing.T) {
	unsetenv(t, ort.EnvLibrary)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	want := filepath.Join(cache, "marginaudit", "onnxruntime-"+ort.LibraryVersion, "libonnxruntime.so.1")
	if got, err := ort.DefaultLibraryPath(); err != nil || got != want {
		t.Errorf("DefaultLibraryPath() = %q, %v; want %q, nil", got, err, want)
	}
	if err := os.MkdirAll(filepath.Dir(want), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ort.LibraryPath(); err != nil || got != want {
		t.Errorf("LibraryPath() = %q, %v; want %q, nil", got, err, want)
	}
}

func TestLibraryPathMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nowhere", "libonnxruntime.so.1")
	cache := t.TempDir()
	for _, tc := range []struct {
		name, env, wantPath string
	}{
		{"env", missing, missing},
		{"cache", "", filepath.Join(cache, "marginaudit", "onnxruntime-"+ort.LibraryVersion, "libonnxruntime.so.1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			unsetenv(t, ort.EnvLibrary)
			if tc.env != "" {
				t.Setenv(ort.EnvLibrary, tc.env)
			}
			t.Setenv("XDG_CACHE_HOME", cache)
			_, err := ort.LibraryPath()
			if !errors.Is(err, ort.ErrLibraryNotFound) {
				t.Fatalf("LibraryPath() error = %v; want ErrLibraryNotFound", err)
			}
			// The message must say what was tried and how to fix it.
			for _, want := range []string{tc.wantPath, "make ort", ort.EnvLibrary} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestLibraryPathDirectory(t *testing.T) {
	t.Setenv(ort.EnvLibrary, t.TempDir())
	if _, err := ort.LibraryPath(); !errors.Is(err, ort.ErrLibraryNotFound) {
		t.Errorf("LibraryPath() error = %v; want ErrLibraryNotFound", err)
	}
}

func TestInitConcurrent(t *testing.T) {
	orttest.Require(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = ort.Init() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Init() call %d: %v", i, err)
		}
	}
}

func TestVersion(t *testing.T) {
	orttest.Require(t)
	if got := ort.Version(); got != ort.LibraryVersion && os.Getenv(ort.EnvLibrary) == "" {
		t.Errorf("Version() = %q; want %q from the default library", got, ort.LibraryVersion)
	} else if got == "" {
		t.Error(`Version() = ""`)
	}
}
