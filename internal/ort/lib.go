package ort

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// EnvLibrary names the environment variable that, when set and not empty,
// gives the path of the onnxruntime shared library to load.
const EnvLibrary = "MARGINAUDIT_ORT_LIB"

// LibraryVersion is the onnxruntime release that `make ort` installs and that
// the default library path names.
const LibraryVersion = "1.30.0"

// ErrLibraryNotFound is returned, wrapped with the path that was tried and a
// hint, when the onnxruntime shared library cannot be found.
var ErrLibraryNotFound = errors.New("ort: onnxruntime shared library not found")

// DefaultLibraryPath returns where `make ort` (.ci/install-onnxruntime)
// installs the library: $XDG_CACHE_HOME/marginaudit/onnxruntime-1.30.0/
// libonnxruntime.so.1, with $XDG_CACHE_HOME defaulting to $HOME/.cache.
func DefaultLibraryPath() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("ort: locating the user cache folder: %w", err)
	}
	return filepath.Join(cache, "marginaudit", "onnxruntime-"+LibraryVersion, "libonnxruntime.so.1"), nil
}

// LibraryPath returns the path of the onnxruntime shared library that [Init]
// loads: the value of $MARGINAUDIT_ORT_LIB when it is set and not empty,
// otherwise [DefaultLibraryPath]. It checks that the file exists; if not, the
// error wraps [ErrLibraryNotFound] and says how to install the library.
func LibraryPath() (string, error) {
	path := os.Getenv(EnvLibrary)
	fromEnv := path != ""
	if !fromEnv {
		var err error
		if path, err = DefaultLibraryPath(); err != nil {
			return "", err
		}
	}
	info, err := os.Stat(path)
	if err == nil && info.IsDir() {
		err = errors.New("is a folder")
	}
	switch {
	case err == nil:
		return path, nil
	case fromEnv && errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%w: $%s names %s, which does not exist; point it at libonnxruntime.so, or unset it to use the library that `make ort` installs",
			ErrLibraryNotFound, EnvLibrary, path)
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%w: no file %s ($%s is unset); run `make ort` to install onnxruntime %s there, or set %s to the path of libonnxruntime.so",
			ErrLibraryNotFound, path, EnvLibrary, LibraryVersion, EnvLibrary)
	default:
		return "", fmt.Errorf("%w: %s: %w", ErrLibraryNotFound, path, err)
	}
}

var (
	initOnce sync.Once
	initErr  error
)

// Init loads the onnxruntime shared library found by [LibraryPath] and
// creates the process-wide onnxruntime environment. Only the first call does
// the work; every call returns its result, so a failure is reported again on
// each call. Init is safe for concurrent use. [NewSession] calls it, so
// callers need it only to check early that onnxruntime is usable.
//
// The library's own log is limited to errors, written to stderr.
func Init() error {
	initOnce.Do(func() {
		path, err := LibraryPath()
		if err != nil {
			initErr = err
			return
		}
		ortgo.SetSharedLibraryPath(path)
		if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
			initErr = fmt.Errorf("ort: initializing onnxruntime from %s: %w", path, err)
		}
	})
	return initErr
}

// Version returns the version of the loaded onnxruntime library, such as
// "1.30.0", calling [Init] first; it returns "" when Init fails.
func Version() string {
	if Init() != nil {
		return ""
	}
	return ortgo.GetVersion()
}
