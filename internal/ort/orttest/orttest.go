// Package orttest helps tests that need onnxruntime: they fail when it is
// missing in CI and skip, saying how to install it, elsewhere.
package orttest

import (
	"os"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
)

// InCI reports whether the tests run in continuous integration, that is
// whether the environment variable CI is set and not empty. There the
// onnxruntime library is installed (by `make test`), so its absence is a
// failure.
func InCI() bool { return os.Getenv("CI") != "" }

// Require calls [ort.Init] and stops the test when onnxruntime cannot be
// loaded: with a failure when [InCI], with a skip otherwise.
func Require(tb testing.TB) {
	tb.Helper()
	err := ort.Init()
	if err == nil {
		return
	}
	if InCI() {
		tb.Fatalf("onnxruntime is required in CI ($CI is set): %v", err)
	}
	tb.Skipf("skipping, onnxruntime is not available: %v", err)
}
