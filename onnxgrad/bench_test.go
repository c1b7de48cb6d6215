package onnxgrad

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// benchBatch is the batch size of the Jacobian benchmarks (the foundation
// issue asks for 64 images).
const benchBatch = 64

// noSpinning runs the benchmarks' sessions with ort.SessionOptions.NoSpinning,
// to compare against the default (spinning) with benchstat.
var noSpinning = flag.Bool("nospinning", false, "benchmarks: run onnxruntime sessions without intra-op thread spinning")

// benchThreads is the benchmarks' intra-op thread count.
var benchThreads = flag.Int("threads", 2, "benchmarks: onnxruntime intra-op threads (default: the CI machine's core count)")

// benchProfile turns on onnxruntime's per-node profiler in the benchmarks'
// sessions (bench/train/ort_profile.py summarises the files).
var benchProfile = flag.String("ort-profile", "", "benchmarks: write onnxruntime's per-node profiles to files named `PREFIX`_*.json")

// benchSession opens an onnxruntime session on m with -threads intra-op
// threads.
func benchSession(b *testing.B, m *onnxpb.ModelProto) *ort.Session {
	b.Helper()
	newTestRuntime(b)
	data, err := Encode(m)
	if err != nil {
		b.Fatal(err)
	}
	s, err := ort.NewSession(data, ort.SessionOptions{Threads: *benchThreads, NoSpinning: *noSpinning, ProfilePrefix: *benchProfile})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// loop runs f b.N times with b.Loop and reports, besides the wall time, the
// process's CPU time per op as "cpu-ns/op". On a machine shared with other
// jobs the CPU time varies less than the wall time (it still grows when
// they compete for caches and memory bandwidth), so it separates graph
// variants with fewer runs; run with -nospinning for it, since spinning
// threads burn CPU time while they wait.
func loop(b *testing.B, f func() error) {
	b.ReportAllocs()
	start, ok := cpuTime()
	for b.Loop() {
		if err := f(); err != nil {
			b.Fatal(err)
		}
	}
	if end, ok2 := cpuTime(); ok && ok2 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

// forwardFLOPs counts the multiply-adds (×2) of the Conv, Gemm and MatMul
// nodes of m for one sample, from inferred shapes.
func forwardFLOPs(b *testing.B, m *onnxpb.ModelProto) float64 {
	gr := newGraph(proto.Clone(m).(*onnxpb.ModelProto), "")
	gr.infer()
	prod := func(s Shape) float64 {
		p := 1.0
		for _, d := range s {
			if d.Known() {
				p *= float64(d.Value)
			}
		}
		return p
	}
	var flops float64
	for _, n := range gr.g.GetNode() {
		c := &nodeCtx{gr: gr, n: n}
		switch n.GetOpType() {
		case "Conv": // 2 · |Y| · (C/g) · k…, with |Y| per sample
			w := c.shapeIn(1)
			flops += 2 * prod(c.shapeOut(0)[1:]) * prod(w[1:])
		case "Gemm", "MatMul": // 2 · N_out · K
			a := c.shapeIn(0)
			flops += 2 * prod(c.shapeOut(0)[1:]) * float64(a[len(a)-1].Value)
		}
	}
	return flops
}

// BenchmarkJacobianCNN measures the per-sample Jacobian of the CNN fixture
// (10 classes) for a batch of 64 images: the shared-forward Jacobian graph
// (one run) against a VJP graph run once per class, and the plain forward
// pass for scale. It reports images/s and the effective GFLOP/s, counting
// (1 + K) forward passes' worth of Conv/Gemm arithmetic per image.
func BenchmarkJacobianCNN(b *testing.B) {
	m, err := Load("../testdata/models/cnn.onnx")
	if err != nil {
		b.Fatal(err)
	}
	const k = 10
	x := make([]float32, benchBatch*28*28)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = rng.Float32()
	}
	in := ort.NewValue(x, benchBatch, 1, 28, 28)
	fwd := forwardFLOPs(b, m)
	report := func(b *testing.B, passes float64) {
		b.ReportMetric(float64(benchBatch*b.N)/b.Elapsed().Seconds(), "images/s")
		b.ReportMetric(passes*fwd*float64(benchBatch*b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	}

	b.Run("forward", func(b *testing.B) {
		s := benchSession(b, m)
		out := make([]ort.Value, len(s.Outputs()))
		loop(b, func() error { return s.Run([]ort.Value{in}, out) })
		report(b, 1)
	})
	b.Run("shared-forward", func(b *testing.B) {
		res, err := Build(m, Options{Mode: Jacobian})
		if err != nil {
			b.Fatal(err)
		}
		s := benchSession(b, res.Model)
		out := make([]ort.Value, len(s.Outputs()))
		loop(b, func() error { return s.Run([]ort.Value{in}, out) })
		report(b, 1+k)
	})
	b.Run("vjp-per-class", func(b *testing.B) {
		res, err := Build(m, Options{Mode: VJP})
		if err != nil {
			b.Fatal(err)
		}
		s := benchSession(b, res.Model)
		seeds := make([]ort.Value, k)
		for c := range seeds {
			v := make([]float32, benchBatch*k)
			for n := range benchBatch {
				v[n*k+c] = 1
			}
			seeds[c] = ort.NewValue(v, benchBatch, k)
		}
		out := make([]ort.Value, len(s.Outputs()))
		loop(b, func() error {
			for c := range k {
				if err := s.Run([]ort.Value{in, seeds[c]}, out); err != nil {
					return err
				}
			}
			return nil
		})
		report(b, 1+k)
	})
}

// BenchmarkGemm is the machine's baseline: a plain [256,1024]×[1024,1024]
// Gemm in onnxruntime with the same 2 threads.
func BenchmarkGemm(b *testing.B) {
	const m, kk, n = 256, 1024, 1024
	w := make([]float32, kk*n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range w {
		w[i] = rng.Float32()
	}
	g := &onnxpb.GraphProto{
		Name:        proto.String("gemm"),
		Initializer: []*onnxpb.TensorProto{NewTensorFloat32("w", []int64{kk, n}, w)},
		Input:       []*onnxpb.ValueInfoProto{tensorValueInfo("a", onnxpb.TensorProto_FLOAT, shapeOf([]int64{m, kk}))},
		Output:      []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, shapeOf([]int64{m, n}))},
		Node:        []*onnxpb.NodeProto{{OpType: proto.String("Gemm"), Input: []string{"a", "w"}, Output: []string{"y"}}},
	}
	model := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
	s := benchSession(b, model)
	a := make([]float32, m*kk)
	for i := range a {
		a[i] = rng.Float32()
	}
	in := []ort.Value{ort.NewValue(a, m, kk)}
	out := []ort.Value{ort.NewValue(make([]float32, m*n), m, n)}
	loop(b, func() error { return s.Run(in, out) })
	b.ReportMetric(2*m*kk*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// uniformAroundZero returns k values drawn uniformly from [−0.5, 0.5).
func uniformAroundZero(rng *rand.Rand, k int64) []float32 {
	v := make([]float32, k)
	for i := range v {
		v[i] = rng.Float32() - 0.5
	}
	return v
}

// BenchmarkConvParamsGrad measures the Params-mode gradient of one Conv
// layer (3×3, pads 1, stride 1, bias) at the sizes of the study's
// Fashion-MNIST CNN at training batch 128: conv1 (1→32 channels, 28×28) and
// conv2 (32→64 channels, 14×14). Weights and bias are graph inputs, as in the
// training graph (trainer/model.LossGraph); the input is not differentiated,
// so the run is the forward Conv plus the weight and bias gradients.
// "forward" times the Conv alone for scale.
func BenchmarkConvParamsGrad(b *testing.B) {
	const n = 128
	for _, size := range []struct {
		name    string
		c, m, h int64
	}{
		{"1to32_28x28", 1, 32, 28},
		{"32to64_14x14", 32, 64, 14},
	} {
		rng := rand.New(rand.NewPCG(5, 6))
		vals := func(k int64) []float32 { return uniformAroundZero(rng, k) }
		xs, ws, ys := []int64{n, size.c, size.h, size.h}, []int64{size.m, size.c, 3, 3}, []int64{n, size.m, size.h, size.h}
		g := &onnxpb.GraphProto{
			Name: proto.String("conv"),
			Input: []*onnxpb.ValueInfoProto{
				tensorValueInfo("x", onnxpb.TensorProto_FLOAT, shapeOf(xs)),
				tensorValueInfo("w", onnxpb.TensorProto_FLOAT, shapeOf(ws)),
				tensorValueInfo("b", onnxpb.TensorProto_FLOAT, shapeOf([]int64{size.m})),
			},
			Output: []*onnxpb.ValueInfoProto{tensorValueInfo("y", onnxpb.TensorProto_FLOAT, shapeOf(ys))},
			Node: []*onnxpb.NodeProto{{OpType: proto.String("Conv"), Input: []string{"x", "w", "b"}, Output: []string{"y"},
				Attribute: []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{3, 3}), attrInts("pads", []int64{1, 1, 1, 1})}}},
		}
		m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
		feeds := map[string]ort.Value{
			"x": ort.NewValue(vals(n*size.c*size.h*size.h), xs...),
			"w": ort.NewValue(vals(size.m*size.c*9), ws...),
			"b": ort.NewValue(vals(size.m), size.m),
		}
		run := func(b *testing.B, m *onnxpb.ModelProto) {
			s := benchSession(b, m)
			var in []ort.Value
			for _, info := range s.Inputs() {
				in = append(in, feeds[info.Name])
			}
			out := make([]ort.Value, len(s.Outputs()))
			loop(b, func() error { return s.Run(in, out) })
		}
		b.Run(size.name+"/forward", func(b *testing.B) { run(b, m) })
		b.Run(size.name+"/grad", func(b *testing.B) {
			res, err := Build(m, Options{Mode: Params, WRT: []string{"w", "b"}})
			if err != nil {
				b.Fatal(err)
			}
			feeds[res.Seed] = ort.NewValue(vals(n*size.m*size.h*size.h), ys...)
			run(b, res.Model)
		})
	}
}

// studyCNN returns the study's Fashion-MNIST CNN (trainer/model's default
// CNN: Conv(1→32, 3×3, pads 1)-Relu-MaxPool(2), Conv(32→64)-Relu-MaxPool(2),
// Flatten, Gemm(3136→128)-Relu, Gemm(128→10)) with seeded random weights:
// as initializers, the form the auditor differentiates, or, with
// weightInputs, as graph inputs after "input", the form the trainer
// differentiates; then it also returns the weights, in input order.
func studyCNN(weightInputs bool) (*onnxpb.ModelProto, []ort.Value) {
	rng := rand.New(rand.NewPCG(7, 8))
	g := &onnxpb.GraphProto{
		Name:   proto.String("study-cnn"),
		Input:  []*onnxpb.ValueInfoProto{tensorValueInfo("input", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(1), known(28), known(28)})},
		Output: []*onnxpb.ValueInfoProto{tensorValueInfo("logits", onnxpb.TensorProto_FLOAT, Shape{{Param: "N"}, known(10)})},
	}
	var weights []ort.Value
	param := func(name string, fanIn int64, dims ...int64) string {
		n := mustElements(dims)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * math.Sqrt(2/float64(fanIn)))
		}
		if weightInputs {
			g.Input = append(g.Input, tensorValueInfo(name, onnxpb.TensorProto_FLOAT, shapeOf(dims)))
			weights = append(weights, ort.NewValue(v, dims...))
		} else {
			g.Initializer = append(g.Initializer, NewTensorFloat32(name, dims, v))
		}
		return name
	}
	node := func(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) string {
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String(out), OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs})
		return out
	}
	x := "input"
	for i, ch := range [][2]int64{{1, 32}, {32, 64}} {
		l := fmt.Sprintf("conv%d", i+1)
		x = node("Conv", []string{x, param(l+".w", 9*ch[0], ch[1], ch[0], 3, 3), param(l+".b", 9*ch[0], ch[1])}, l,
			attrInts("kernel_shape", []int64{3, 3}), attrInts("pads", []int64{1, 1, 1, 1}))
		x = node("Relu", []string{x}, l+".relu")
		x = node("MaxPool", []string{x}, l+".pool", attrInts("kernel_shape", []int64{2, 2}), attrInts("strides", []int64{2, 2}))
	}
	x = node("Flatten", []string{x}, "flatten", attrInt("axis", 1))
	x = node("Gemm", []string{x, param("fc1.w", 3136, 128, 3136), param("fc1.b", 3136, 128)}, "fc1", attrInt("transB", 1))
	x = node("Relu", []string{x}, "fc1.relu")
	node("Gemm", []string{x, param("fc2.w", 128, 10, 128), param("fc2.b", 128, 10)}, "logits", attrInt("transB", 1))
	return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}, weights
}

// BenchmarkParamsStudyCNN measures the training graph's work for the
// study's CNN at batch 128: forward, then the gradients of all weights (fed
// as inputs, as the trainer does) for a given cotangent of the logits.
// trainer/train's BenchmarkStep adds the loss and the optimizer.
func BenchmarkParamsStudyCNN(b *testing.B) {
	const batch = 128
	m, weights := studyCNN(true)
	var wrt []string
	for _, vi := range m.GetGraph().GetInput()[1:] {
		wrt = append(wrt, vi.GetName())
	}
	res, err := Build(m, Options{Mode: Params, WRT: wrt})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*28*28)
	for i := range x {
		x[i] = rng.Float32()
	}
	seed := make([]float32, batch*10)
	for i := range seed {
		seed[i] = float32(rng.NormFloat64()) / batch
	}
	feeds := map[string]ort.Value{"input": ort.NewValue(x, batch, 1, 28, 28), res.Seed: ort.NewValue(seed, batch, 10)}
	for i, w := range wrt {
		feeds[w] = weights[i]
	}
	s := benchSession(b, res.Model)
	var in []ort.Value
	for _, info := range s.Inputs() {
		in = append(in, feeds[info.Name])
	}
	out := make([]ort.Value, len(s.Outputs()))
	loop(b, func() error { return s.Run(in, out) })
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkJacobianStudyCNN is BenchmarkJacobianCNN's shared-forward
// Jacobian for the study's CNN (32 and 64 channels, see studyCNN), whose
// Jacobian graph is dominated by the convolutions' input gradients.
func BenchmarkJacobianStudyCNN(b *testing.B) {
	m, _ := studyCNN(false)
	res, err := Build(m, Options{Mode: Jacobian})
	if err != nil {
		b.Fatal(err)
	}
	x := make([]float32, benchBatch*28*28)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range x {
		x[i] = rng.Float32()
	}
	in := []ort.Value{ort.NewValue(x, benchBatch, 1, 28, 28)}
	s := benchSession(b, res.Model)
	out := make([]ort.Value, len(s.Outputs()))
	loop(b, func() error { return s.Run(in, out) })
	b.ReportMetric(float64(benchBatch*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkConvInputGrad times the input gradient of strided convolutions
// in the two forms gradConv can emit, for gY of 144 rows (16 images × 9
// Jacobian rows: attack.DefaultDeepFoolBatch with 10 classes): "phases",
// Build's gradient graph with the stride-phase Conv (convInputGradByPhases,
// whatever phasesPay says) without the forward Conv, against
// "convtranspose", a ConvTranspose of the same gY. The geometries are
// torchvision ResNet-18's strided convolutions on 3×32×32 images and
// neighbours that locate phasesPay's bounds (CNAME_kK_HxW: C input
// channels, 2C outputs, K×K kernel, stride 2, H×W input). Run with
// -nospinning and compare cpu-ns/op, with -threads 1 and 2.
func BenchmarkConvInputGrad(b *testing.B) {
	const n = 144
	for _, g := range []struct {
		name              string
		c, m, h, k, s, pd int64
	}{
		{"stem_3to64_k7_32x32", 3, 64, 32, 7, 2, 3},
		{"layer2_64to128_k3_8x8", 64, 128, 8, 3, 2, 1},
		{"layer2_64to128_k1_8x8", 64, 128, 8, 1, 2, 0},
		{"layer3_128to256_k3_4x4", 128, 256, 4, 3, 2, 1},
		{"layer3_128to256_k1_4x4", 128, 256, 4, 1, 2, 0},
		{"layer4_256to512_k3_2x2", 256, 512, 2, 3, 2, 1},
		{"layer4_256to512_k1_2x2", 256, 512, 2, 1, 2, 0},
		{"c3_k3_4x4", 3, 6, 4, 3, 2, 1},
		{"c4_k3_4x4", 4, 8, 4, 3, 2, 1},
		{"c8_k3_4x4", 8, 16, 4, 3, 2, 1},
		{"c16_k3_4x4", 16, 32, 4, 3, 2, 1},
		{"c64_k7_4x4", 64, 128, 4, 7, 2, 3},
		{"c16_k3_8x8", 16, 32, 8, 3, 2, 1},
		{"c128_k3_8x8", 128, 256, 8, 3, 2, 1},
		{"c32_k3_16x16", 32, 64, 16, 3, 2, 1},
		{"c64_k3_16x16", 64, 128, 16, 3, 2, 1},
	} {
		rng := rand.New(rand.NewPCG(9, 10))
		vals := func(k int64) []float32 { return uniformAroundZero(rng, k) }
		ho := (g.h+2*g.pd-g.k)/g.s + 1
		xs, ws, ys := []int64{n, g.c, g.h, g.h}, []int64{g.m, g.c, g.k, g.k}, []int64{n, g.m, ho, ho}
		w := NewTensorFloat32("w", ws, vals(g.m*g.c*g.k*g.k))
		model := func(node *onnxpb.NodeProto, in string, shape []int64) *onnxpb.ModelProto {
			gp := &onnxpb.GraphProto{Name: proto.String("conv"), Initializer: []*onnxpb.TensorProto{w}, Node: []*onnxpb.NodeProto{node},
				Input:  []*onnxpb.ValueInfoProto{tensorValueInfo(in, onnxpb.TensorProto_FLOAT, shapeOf(shape))},
				Output: []*onnxpb.ValueInfoProto{tensorValueInfo(node.Output[0], onnxpb.TensorProto_FLOAT, nil)}}
			return &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: gp, OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(13)}}}
		}
		geometry := []*onnxpb.AttributeProto{attrInts("kernel_shape", []int64{g.k, g.k}), attrInts("strides", []int64{g.s, g.s}), attrInts("pads", []int64{g.pd, g.pd, g.pd, g.pd})}
		x, gy := ort.NewValue(vals(n*g.c*g.h*g.h), xs...), ort.NewValue(vals(n*g.m*ho*ho), ys...)
		run := func(b *testing.B, m *onnxpb.ModelProto, in []ort.Value) {
			s := benchSession(b, m)
			out := make([]ort.Value, len(s.Outputs()))
			loop(b, func() error { return s.Run(in, out) })
		}
		b.Run(g.name+"/phases", func(b *testing.B) {
			alwaysPhases(b)
			fwd := model(&onnxpb.NodeProto{OpType: proto.String("Conv"), Input: []string{"x", "w"}, Output: []string{"y"}, Attribute: geometry}, "x", xs)
			res, err := Build(fwd, Options{Mode: VJP, WRT: []string{"x"}})
			if err != nil {
				b.Fatal(err)
			}
			// Drop the forward Conv: the gradient of x reads only x's shape.
			gp := res.Model.GetGraph()
			gp.Node = slices.DeleteFunc(gp.Node, func(nd *onnxpb.NodeProto) bool { return nd.Output[0] == "y" })
			gp.Output = slices.DeleteFunc(gp.Output, func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == "y" })
			run(b, res.Model, []ort.Value{x, gy})
		})
		b.Run(g.name+"/convtranspose", func(b *testing.B) {
			outPad := (g.h + 2*g.pd - g.k) % g.s
			ct := &onnxpb.NodeProto{OpType: proto.String("ConvTranspose"), Input: []string{"gy", "w"}, Output: []string{"gx"},
				Attribute: append(geometry, attrInts("output_padding", []int64{outPad, outPad}))}
			// The same final Reshape as Build's (reshapeLike), which onnxruntime copies.
			m := model(ct, "gy", ys)
			m.Graph.Node[0].Output[0] = "ct"
			m.Graph.Initializer = append(m.Graph.Initializer, newTensorInt64("shape", []int64{4}, xs))
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("Reshape"), Input: []string{"ct", "shape"}, Output: []string{"gx"}})
			run(b, m, []ort.Value{gy})
		})
	}
}
