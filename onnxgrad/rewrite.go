package onnxgrad

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Forward-graph rewrites that Build applies before differentiating: each
// leaves every graph output unchanged and makes the gradient graph cheaper.

// commuteReluMaxPool rewrites Relu → MaxPool into MaxPool → Relu where the
// Relu's output feeds only the MaxPool. The two commute (Relu is monotone,
// so the window maximum of Relu(x) is Relu of the window maximum of x), so
// the MaxPool's output is unchanged; but the Relu, and the mask its gradient
// multiplies by, now act on the pooled tensor, a quarter of the size for a
// 2×2 pool, in the forward pass and in every backward row. The gradient is
// unchanged too: where the window maximum is positive both orders pick the
// same argmax and pass gY; where it is not, both give 0.
//
// The rewrite is skipped where another node or a graph output reads the
// Relu's output or the MaxPool's Indices (whose ties among Relu's zeros
// would change), and in graphs with subgraphs, whose implicit inputs are not
// tracked.
func (gr *graph) commuteReluMaxPool() {
	g := gr.g
	uses := map[string]int{}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.GetG() != nil || len(a.GetGraphs()) > 0 {
				return
			}
		}
		for _, in := range n.GetInput() {
			uses[in]++
		}
	}
	for _, o := range g.GetOutput() {
		uses[o.GetName()]++
	}
	producer := map[string]int{}
	for i, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = i
		}
	}
	for j, pool := range g.GetNode() {
		if pool.GetOpType() != "MaxPool" || canonicalDomain(pool.GetDomain()) != "" || len(pool.GetInput()) != 1 ||
			len(pool.GetOutput()) == 0 || (len(pool.GetOutput()) > 1 && pool.GetOutput()[1] != "" && uses[pool.GetOutput()[1]] > 0) {
			continue
		}
		r := pool.GetInput()[0]
		i, ok := producer[r]
		if !ok || uses[r] != 1 {
			continue
		}
		relu := g.GetNode()[i]
		if relu.GetOpType() != "Relu" || canonicalDomain(relu.GetDomain()) != "" || len(relu.GetInput()) != 1 || len(relu.GetOutput()) != 1 {
			continue
		}
		// MaxPool moves to the Relu's place (x → p), the Relu to the
		// MaxPool's (p → y): between them nothing reads r.
		x, y := relu.GetInput()[0], pool.GetOutput()[0]
		p := gr.fresh(y + "_prerelu")
		newPool := proto.Clone(pool).(*onnxpb.NodeProto)
		newPool.Input[0], newPool.Output[0] = x, p
		newRelu := proto.Clone(relu).(*onnxpb.NodeProto)
		newRelu.Input[0], newRelu.Output[0] = p, y
		g.Node[i], g.Node[j] = newPool, newRelu
		g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == r })
	}
}
