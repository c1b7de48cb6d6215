// Package checkpointtest helps tests compare training runs.
package checkpointtest

import (
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/trainer/checkpoint"
)

// SameCheckpoints checks that the checkpoints of epochs 0…last in the
// folders got and want hold the same weights, bit for bit, and the same
// metadata but for the seconds taken and the epochs planned (the first
// part of a resumed run plans fewer).
func SameCheckpoints(tb testing.TB, got, want string, last int) {
	tb.Helper()
	for e := 0; e <= last; e++ {
		gm, gmd, err := checkpoint.Read(checkpoint.Path(got, e))
		if err != nil {
			tb.Fatal(err)
		}
		wm, wmd, err := checkpoint.Read(checkpoint.Path(want, e))
		if err != nil {
			tb.Fatal(err)
		}
		for i, p := range wm.Params {
			if i >= len(gm.Params) || !slices.Equal(p.Data, gm.Params[i].Data) {
				tb.Errorf("epoch %d: %s in %s differs from %s's", e, p.Name, got, want)
			}
		}
		gmd.Seconds, wmd.Seconds, gmd.Epochs, wmd.Epochs = 0, 0, 0, 0
		if g, w := props(gmd), props(wmd); g != w {
			tb.Errorf("epoch %d: the records in %s and %s differ:\n%s\nvs\n%s", e, got, want, g, w)
		}
	}
}

// props formats the metadata m as it is stored, one key=value a line.
func props(m *checkpoint.Metadata) string {
	s := ""
	for _, p := range m.Props() {
		s += p.GetKey() + "=" + p.GetValue() + "\n"
	}
	return s
}
