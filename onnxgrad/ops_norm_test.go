package onnxgrad

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// TestLayerNormStatsRefused checks that a gradient flowing into the Mean
// output of LayerNormalization (used by PyTorch's training graphs) is an
// error naming the node, not a silently wrong gradient.
func TestLayerNormStatsRefused(t *testing.T) {
	elem := onnxpb.TensorProto_FLOAT
	g := &onnxpb.GraphProto{
		Name:        proto.String("ln"),
		Input:       []*onnxpb.ValueInfoProto{tensorValueInfo("x", elem, shapeOf([]int64{2, 4}))},
		Initializer: []*onnxpb.TensorProto{NewTensorFloat32("scale", []int64{4}, []float32{1, 1, 1, 1})},
		Node: []*onnxpb.NodeProto{
			{Name: proto.String("ln"), OpType: proto.String("LayerNormalization"), Input: []string{"x", "scale"}, Output: []string{"y", "mean"}},
			{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"y", "mean"}, Output: []string{"z"}},
		},
		Output: []*onnxpb.ValueInfoProto{tensorValueInfo("z", elem, nil)},
	}
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}}
	_, err := Build(m, Options{Mode: VJP})
	var ne *NodeError
	if !errors.As(err, &ne) || ne.Node != "ln" || !strings.Contains(ne.Msg, "Mean and InvStdDev") {
		t.Fatalf("Build = %v; want a NodeError for node \"ln\" about the Mean and InvStdDev outputs", err)
	}
}
