package bound_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

// FuzzParse feeds Parse mutated fixture models: it may refuse them, never
// panic, and what it accepts has consistent shapes.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"mlp", "mlp_view", "cnn_small", "cnn_overlap", "resnet_small"} {
		data, err := os.ReadFile(filepath.Join(modelsDir, name+".onnx"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<20 {
			t.Skip("absurd size")
		}
		m, err := onnxgrad.Decode(data, "fuzz.onnx")
		if err != nil {
			return
		}
		net, err := bound.Parse(m, "fuzz.onnx")
		if err != nil {
			return
		}
		if net.Output <= 0 || net.Output >= len(net.Shapes) || net.Classes != net.Size(net.Output) {
			t.Fatalf("output %d of %d tensors, %d classes", net.Output, len(net.Shapes), net.Classes)
		}
		for _, l := range net.Layers {
			if l.Out <= 0 || l.Out >= len(net.Shapes) || l.In[0] >= l.Out {
				t.Fatalf("layer %s %q: tensors %v → %d", l.Kind, l.Node, l.In, l.Out)
			}
		}
	})
}
