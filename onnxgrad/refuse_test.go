package onnxgrad

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestRefusedForms checks that forms of supported ops without a gradient
// rule are refused by Build with a NodeError that names the node and says
// what is unsupported.
func TestRefusedForms(t *testing.T) {
	for _, tc := range []struct {
		c    ruleCase
		want string
	}{
		{ruleCase{name: "Einsum diagonal", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "bii->bi")}, inputs: []caseInput{f(2, 3, 3)}}, "an index repeats within one operand"},
		{ruleCase{name: "Einsum three operands", op: "Einsum", attrs: []*onnxpb.AttributeProto{attrString("equation", "ij,jk,kl->il")}, inputs: []caseInput{f(2, 3), f(3, 4), f(4, 5)}}, "with 3 operands"},
		{ruleCase{name: "Slice step on the symbolic batch", op: "Slice", inputs: []caseInput{{shape: []int64{2, 3}, symbolicBatch: true}, ints(-1), ints(math.MinInt64 + 1), ints(0), ints(-1)}}, "symbolic size"},
		{ruleCase{name: "Gelu unknown approximation", op: "Gelu", opset: 20, attrs: []*onnxpb.AttributeProto{attrString("approximate", "erf")}, inputs: []caseInput{f(2, 3)}}, `approximate "erf" is not one of`},
	} {
		t.Run(tc.c.name, func(t *testing.T) {
			m, wrt := caseModel(tc.c, onnxpb.TensorProto_DOUBLE)
			_, err := Build(m, Options{Mode: VJP, WRT: wrt})
			var ne *NodeError
			if !errors.As(err, &ne) || ne.Node != "node" || ne.OpType != tc.c.op || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build: %v; want a NodeError for node %q (%s) saying %q", err, "node", tc.c.op, tc.want)
			}
		})
	}
}
