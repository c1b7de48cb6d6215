package bound_test

import (
	"testing"

	"github.com/marginaudit/marginaudit/auditor/bound"
)

// TestParseFixtures: the fixtures bound propagation supports parse into
// the expected layers; the others are refused by op.
func TestParseFixtures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kinds   string // the layers' kinds, or the refused op
		refused bool
	}{
		{"mlp", "Reshape Dense Relu Dense Relu Dense", false},
		{"mlp_view", "Reshape Dense Relu Dense Relu Dense", false},
		{"cnn_small_softmax", "Conv Relu Conv Relu MaxPool Reshape Dense", false},
		{"resnet_small", "Conv Relu Conv Relu Conv Sum Relu Conv Conv Relu Conv Sum Scale Relu AvgPool Reshape Dense", false},
		{"mobilenet_v2", "Clip", true},
	} {
		m, _ := fixture(t, tc.name)
		net, err := bound.Parse(m, tc.name)
		if tc.refused {
			ue, ok := err.(*bound.UnsupportedError)
			if !ok || ue.Op != tc.kinds {
				t.Errorf("%s: got %v, want op %s refused", tc.name, err, tc.kinds)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := ""
		for i, l := range net.Layers {
			if i > 0 {
				got += " "
			}
			got += l.Kind.String()
		}
		if got != tc.kinds {
			t.Errorf("%s: layers %s, want %s", tc.name, got, tc.kinds)
		}
	}
}
