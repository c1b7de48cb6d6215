package model_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/internal/ort/orttest"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/trainer/internal/ref"
	"github.com/marginaudit/marginaudit/trainer/model"
)

func TestNewLayout(t *testing.T) {
	for _, tc := range []struct {
		arch    model.Arch
		c, h, w int
		dims    map[string][]int64
		params  int
	}{
		{
			// The study's MNIST network: 784-256-256-10.
			arch: model.Arch{Kind: "mlp"}, c: 1, h: 28, w: 28,
			dims:   map[string][]int64{"fc1.weight": {256, 784}, "fc2.weight": {256, 256}, "fc3.weight": {10, 256}, "fc3.bias": {10}},
			params: 784*256 + 256 + 256*256 + 256 + 256*10 + 10,
		},
		{
			arch: model.Arch{Kind: "cnn"}, c: 1, h: 28, w: 28,
			dims:   map[string][]int64{"conv1.weight": {32, 1, 3, 3}, "conv2.weight": {64, 32, 3, 3}, "fc1.weight": {128, 64 * 7 * 7}, "fc2.weight": {10, 128}},
			params: 32*9 + 32 + 64*32*9 + 64 + 64*7*7*128 + 128 + 128*10 + 10,
		},
		{
			arch: model.Arch{Kind: "CNN", Channels: []int{8}, Kernel: 5, Hidden: []int{}}, c: 3, h: 32, w: 32,
			dims:   map[string][]int64{"conv1.weight": {8, 3, 5, 5}, "conv1.bias": {8}, "fc1.weight": {10, 8 * 16 * 16}},
			params: 8*3*25 + 8 + 8*16*16*10 + 10,
		},
	} {
		t.Run(tc.arch.Kind, func(t *testing.T) {
			m, err := model.New(tc.arch, tc.c, tc.h, tc.w, 10)
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tc.dims {
				p := m.Param(name)
				if p == nil {
					t.Fatalf("no param %q in %s", name, m.Arch)
				}
				if !slices.Equal(p.Dims, want) {
					t.Errorf("%s dims = %v, want %v", name, p.Dims, want)
				}
			}
			if got := m.NumParams(); got != tc.params {
				t.Errorf("NumParams = %d, want %d", got, tc.params)
			}
			if len(m.Params)%2 != 0 || !m.Params[len(m.Params)-1].Last || m.Params[0].Last {
				t.Errorf("bad Last flags: %+v", m.Params)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		arch    model.Arch
		c, h, w int
		want    error
	}{
		{model.Arch{Kind: "resnet"}, 1, 28, 28, model.ErrUnknownArch},
		{model.Arch{Kind: "mlp", Hidden: []int{0}}, 1, 28, 28, model.ErrBadArch},
		{model.Arch{Kind: "cnn", Kernel: 4}, 1, 28, 28, model.ErrBadArch},
		{model.Arch{Kind: "cnn", Channels: []int{4, 4, 4}}, 1, 4, 4, model.ErrBadArch},
		{model.Arch{Kind: "cnn", Channels: []int{}}, 1, 28, 28, model.ErrBadArch},
	} {
		if _, err := model.New(tc.arch, tc.c, tc.h, tc.w, 10); !errors.Is(err, tc.want) {
			t.Errorf("New(%+v) = %v, want %v", tc.arch, err, tc.want)
		}
	}
}

func TestInit(t *testing.T) {
	m, err := model.New(model.Arch{Kind: "mlp"}, 1, 28, 28, 10)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(7)
	for _, p := range m.Params {
		var sum, sq, mx float64
		for _, v := range p.Data {
			sum += float64(v)
			sq += float64(v) * float64(v)
			mx = max(mx, math.Abs(float64(v)))
		}
		n := float64(len(p.Data))
		mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
		switch {
		case p.Bias:
			if mx != 0 {
				t.Errorf("%s: bias not zero", p.Name)
			}
		case p.Last:
			// Glorot uniform on ±a: std a/√3; the max is just below a.
			a := math.Sqrt(6 / float64(p.FanIn+p.FanOut))
			if mx > a || mx < 0.95*a || math.Abs(std-a/math.Sqrt(3)) > 0.05*a {
				t.Errorf("%s: max %v std %v, want Glorot bound %v", p.Name, mx, std, a)
			}
		default:
			// He normal: std √(2/fan_in); with ≥ 65536 draws the sample std is
			// within 1 % and the mean within 5 standard errors.
			want := math.Sqrt(2 / float64(p.FanIn))
			if math.Abs(std-want) > 0.01*want || math.Abs(mean) > 5*want/math.Sqrt(n) {
				t.Errorf("%s: mean %v std %v, want 0, %v", p.Name, mean, std, want)
			}
		}
	}
	again := m.Clone()
	again.Init(7)
	other := m.Clone()
	other.Init(8)
	for i, p := range m.Params {
		if !slices.Equal(p.Data, again.Params[i].Data) {
			t.Errorf("%s: same seed, different weights", p.Name)
		}
		if !p.Bias && slices.Equal(p.Data, other.Params[i].Data) {
			t.Errorf("%s: different seeds, same weights", p.Name)
		}
	}
}

func TestGraphsValidate(t *testing.T) {
	for _, arch := range []model.Arch{{Kind: "mlp"}, {Kind: "cnn"}} {
		m, _ := model.New(arch, 1, 28, 28, 10)
		m.Init(1)
		inf := m.Graph(model.AsInitializers)
		info, err := onnxgrad.Inspect(inf, arch.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if got := fmt.Sprint(info.Inputs[0].Name, info.Inputs[0].Shape, info.Outputs[0].Name, info.Outputs[0].Shape); got != "input[N,1,28,28]logits[N,10]" {
			t.Errorf("%s: signature %s", arch.Kind, got)
		}
		if info.Opset != model.Opset || info.Params != int64(m.NumParams()) || !info.Differentiable() {
			t.Errorf("%s: opset %d, %d params (want %d), differentiable %v (%v)", arch.Kind, info.Opset, info.Params, m.NumParams(), info.Differentiable(), info.GradErr)
		}
		loss := m.LossGraph()
		var wrt []string
		for _, p := range m.Params {
			wrt = append(wrt, p.Name)
		}
		res, err := onnxgrad.Build(loss, onnxgrad.Options{Mode: onnxgrad.Params, Output: model.LossName, WRT: wrt})
		if err != nil {
			t.Fatalf("%s: Build(LossGraph): %v", arch.Kind, err)
		}
		if len(res.Grads) != len(m.Params) {
			t.Errorf("%s: %d gradients, want %d", arch.Kind, len(res.Grads), len(m.Params))
		}
	}
}

func TestLoadWeights(t *testing.T) {
	m, _ := model.New(model.Arch{Kind: "cnn", Channels: []int{2}, Hidden: []int{3}}, 1, 4, 4, 3)
	m.Init(3)
	data, err := onnxgrad.Encode(m.Graph(model.AsInitializers))
	if err != nil {
		t.Fatal(err)
	}
	back, err := onnxgrad.Decode(data, "x.onnx")
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := model.New(m.Arch, 1, 4, 4, 3)
	if err := m2.LoadWeights(back); err != nil {
		t.Fatal(err)
	}
	for i, p := range m.Params {
		if !slices.Equal(p.Data, m2.Params[i].Data) {
			t.Errorf("%s differs after round trip", p.Name)
		}
	}
	m3, _ := model.New(model.Arch{Kind: "cnn", Channels: []int{2}, Hidden: []int{4}}, 1, 4, 4, 3)
	if err := m3.LoadWeights(back); !errors.Is(err, model.ErrBadArch) {
		t.Errorf("LoadWeights into another architecture: %v, want ErrBadArch", err)
	}
}

// TestGraphMatchesReference runs both forms of the inference graph in
// onnxruntime and compares the logits with a float64 evaluation in Go.
func TestGraphMatchesReference(t *testing.T) {
	orttest.Require(t)
	for _, tc := range []struct {
		arch    model.Arch
		c, h, w int
	}{
		{model.Arch{Kind: "mlp", Hidden: []int{16, 8}}, 1, 6, 6},
		{model.Arch{Kind: "cnn", Channels: []int{3, 4}, Hidden: []int{6}}, 2, 9, 8},
		{model.Arch{Kind: "cnn", Channels: []int{4}, Kernel: 5, Hidden: []int{}}, 3, 8, 8},
	} {
		t.Run(tc.arch.String(), func(t *testing.T) {
			const n, k = 5, 4
			m, err := model.New(tc.arch, tc.c, tc.h, tc.w, k)
			if err != nil {
				t.Fatal(err)
			}
			m.Init(11)
			r := rand.New(rand.NewPCG(5, 6))
			for _, p := range m.Params {
				if p.Bias {
					for j := range p.Data {
						p.Data[j] = float32(0.1 * r.NormFloat64())
					}
				}
			}
			x := make([]float32, n*tc.c*tc.h*tc.w)
			x64 := make([]float64, len(x))
			for i := range x {
				x[i] = float32(r.Float64())
				x64[i] = float64(x[i])
			}
			want := ref.Logits(m, ref.Weights(m), x64, n)
			xv := ort.NewValue(x, n, int64(tc.c), int64(tc.h), int64(tc.w))
			for _, w := range []model.Weights{model.AsInitializers, model.AsInputs} {
				data, err := onnxgrad.Encode(m.Graph(w))
				if err != nil {
					t.Fatal(err)
				}
				s, err := ort.NewSession(data, ort.SessionOptions{Threads: 1})
				if err != nil {
					t.Fatal(err)
				}
				in := []ort.Value{xv}
				if w == model.AsInputs {
					for _, p := range m.Params {
						in = append(in, ort.NewValue(p.Data, p.Dims...))
					}
				}
				out := []ort.Value{ort.NewValue(make([]float32, n*k), n, k)}
				if err := s.Run(in, out); err != nil {
					t.Fatal(err)
				}
				s.Close()
				for i, v := range out[0].Float32s() {
					// float32 sums of ≤ 200 products of O(1) terms.
					if math.Abs(float64(v)-want[i]) > 1e-4*(1+math.Abs(want[i])) {
						t.Fatalf("weights %d: logit %d = %v, reference %v", w, i, v, want[i])
					}
				}
			}
		})
	}
}

// TestInitGolden pins the initial weights of one seed: checkpoints of
// recorded experiments must be reproducible by later versions.
func TestInitGolden(t *testing.T) {
	m, err := model.New(model.Arch{Kind: model.CNN, Channels: []int{2}, Hidden: []int{}}, 1, 4, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(1)
	for _, tc := range []struct {
		name string
		want []float32
	}{
		{"conv1.weight", []float32{-0.33031347, -0.06200722, 0.031499453, -1.3928204}}, // He normal, std √(2/9)
		{"fc1.weight", []float32{-0.70797336, -0.42390898, 0.47558197, -0.10712699}},   // Glorot uniform, ±√(6/11)
	} {
		if got := m.Param(tc.name).Data[:4]; !slices.Equal(got, tc.want) {
			t.Errorf("%s starts %v, want %v", tc.name, got, tc.want)
		}
	}
}
