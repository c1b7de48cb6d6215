package ort_test

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// TestMain runs only the tests that do not need onnxruntime when it is
// missing outside CI, since the examples cannot skip themselves. In CI every
// test runs, and those needing onnxruntime fail.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := ort.Init(); err != nil && !orttest.InCI() {
		fmt.Fprintf(os.Stderr, "onnxruntime is not available, running only TestLibraryPath*: %v\n", err)
		if err := flag.Set("test.run", "^TestLibraryPath"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
