package attack

import (
	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// ScoreSource says which class scores a [Classifier] computes and attacks.
// Its value is a short description, for reports.
//
// DeepFool measures distances from score gaps f_k − f_j and their
// gradients, so the scores must be logits or log-probabilities, for which
// the gaps agree: log p_k − log p_j = z_k − z_j. Probabilities would give
// other gaps (and margins 2 to 5 times larger, many at the whole pixel
// range). A classifier therefore turns probability outputs into
// log-probabilities in its graph, and every method (scores, Jacobians, the
// cross-entropy gradient) sees the log-probabilities.
type ScoreSource string

const (
	// ScoresLogits: the model's outputs, used as they are (logits, or
	// whatever Options.Scores = LogitScores vouches for).
	ScoresLogits ScoreSource = "logits"
	// ScoresSoftmaxReplaced: the model ends in a Softmax, replaced by a
	// LogSoftmax over the same axis (at every opset both coerce their
	// input to 2-D by the same rule, so the swap is exact).
	ScoresSoftmaxReplaced ScoreSource = "log-probabilities (Softmax replaced by LogSoftmax)"
	// ScoresLogOfProbabilities: the model outputs probabilities p,
	// detected or as Options.Scores says, and the classifier appends
	// log max(p, 2^-126) (see minProbability).
	ScoresLogOfProbabilities ScoreSource = "log of the probability outputs"
	// ScoresLogSoftmax: the model ends in a LogSoftmax; its outputs are
	// log-probabilities already.
	ScoresLogSoftmax ScoreSource = "log-probabilities (LogSoftmax output)"
)

// minProbability is the smallest normal float32, 2^-126 ≈ 1.2e-38: a
// probability output p is clamped to it before the log, so that a class
// whose probability underflowed to 0 (a logit gap beyond about 87 below the
// top class, or 104 into the subnormals) gets the finite score −87.3
// instead of −∞, which would make every gap and distance infinite. Every
// normal p is kept exactly, so the log-probabilities, and so the margins,
// are those of the logits wherever float32 can represent p. The clamp's
// gradient is 0 below it: such a class no longer pulls DeepFool, as the
// probability output holds nothing about it.
const minProbability = 0x1p-126

// transparentOps are the single-data-input operators that move or retype
// elements without changing their values, through which a Softmax may
// reach the scored output: log commutes with them.
var transparentOps = map[string]bool{
	"Identity": true, "Reshape": true, "Flatten": true, "Squeeze": true, "Unsqueeze": true, "Cast": true,
}

// scoreProducer returns the node that computes the values of the graph's
// output, looking through transparentOps (a Cast only to a floating-point
// type), or nil; exclusive reports whether every tensor from that node's
// output to the graph output has exactly one reader.
func scoreProducer(g *onnxpb.GraphProto, output string) (n *onnxpb.NodeProto, exclusive bool) {
	producer := map[string]*onnxpb.NodeProto{}
	readers := map[string]int{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
		for _, in := range n.GetInput() {
			readers[in]++
		}
	}
	for _, o := range g.GetOutput() {
		readers[o.GetName()]++
	}
	exclusive = true
	for t := output; ; {
		n = producer[t]
		if n == nil || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
			return nil, false
		}
		exclusive = exclusive && readers[t] == 1
		if !transparentOps[n.GetOpType()] || (n.GetOpType() == "Cast" && !isFloatCast(n)) || len(n.GetInput()) == 0 {
			return n, exclusive
		}
		t = n.GetInput()[0]
	}
}

// isFloatCast reports whether a Cast node casts to a floating-point type.
func isFloatCast(n *onnxpb.NodeProto) bool {
	for _, a := range n.GetAttribute() {
		if a.GetName() == "to" {
			switch onnxpb.TensorProto_DataType(a.GetI()) {
			case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
				return true
			}
		}
	}
	return false
}

// logScores decides what the graph's output holds from the graph's
// structure, replacing a final Softmax that nothing else reads by a
// LogSoftmax (unless kind is LogitScores, which takes the outputs as they
// are). It returns "" when the structure does not tell, and the probe
// decides.
func logScores(g *onnxpb.GraphProto, output string, kind ScoreKind) ScoreSource {
	n, exclusive := scoreProducer(g, output)
	switch {
	case n == nil:
		return ""
	case n.GetOpType() == "LogSoftmax":
		return ScoresLogSoftmax
	case n.GetOpType() == "Softmax" && kind == LogitScores:
		return ScoresLogits
	case n.GetOpType() == "Softmax" && exclusive:
		n.OpType = proto.String("LogSoftmax")
		return ScoresSoftmaxReplaced
	}
	return ""
}

// appendLog makes the graph's output log max(p, minProbability) of the
// probabilities p it held: the tensor is renamed where it is computed and
// read, and Clip (its min an attribute before opset 11, an input after) and
// Log compute the output under its own name.
func appendLog(m *onnxpb.ModelProto, output string) {
	g := m.GetGraph()
	fresh := namer(g)
	p, clipped := fresh("attack/probabilities"), fresh("attack/clipped")
	for _, n := range g.GetNode() {
		for _, list := range [][]string{n.Input, n.Output} {
			for i, t := range list {
				if t == output {
					list[i] = p
				}
			}
		}
	}
	clip := &onnxpb.NodeProto{Name: proto.String(clipped), OpType: proto.String("Clip"), Input: []string{p}, Output: []string{clipped}}
	if onnxgrad.Opset(m) < 11 {
		clip.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("min"), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(minProbability)}}
	} else {
		lo := fresh("attack/min_probability")
		g.Initializer = append(g.Initializer, onnxgrad.NewTensorFloat32(lo, nil, []float32{minProbability}))
		clip.Input = append(clip.Input, lo)
	}
	g.Node = append(g.Node, clip,
		&onnxpb.NodeProto{Name: proto.String(fresh("attack/log")), OpType: proto.String("Log"), Input: []string{clipped}, Output: []string{output}})
}
