package onnxgrad

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// Tolerances of the finite-difference checks. In float64 the central
// difference with h = 1e-6 has truncation error O(h²·f‴) ≈ 1e-12 and
// rounding error O(ε/h) ≈ 1e-10 relative; 1e-6 leaves a wide margin and still
// catches any wrong rule (which errs by O(1)). In float32 rounding dominates
// (ε/h with h = 1e-2 ≈ 1e-5 per element, summed over a few hundred
// elements); 2e-3 is in line with onnxruntime's own gradient checker
// (1e-3 to 3e-1 absolute). Convolutions and pooling are linear in each
// argument, so their central differences are exact up to rounding.
const (
	tolF64 = 1e-6
	hF64   = 1e-6
	tolF32 = 2e-3
	hF32   = 1e-2
	// hF32Kinked keeps perturbations of kinked inputs (spaced 0.02 apart)
	// within one linear piece.
	hF32Kinked = 1e-3
)

// TestRuleFiniteDifferences checks every rule's VJP against central finite
// differences along random directions: ⟨v, (f(x+hu) − f(x−hu))/2h⟩ must
// equal ⟨VJP(v), u⟩ jointly over all differentiated inputs.
func TestRuleFiniteDifferences(t *testing.T) {
	rt := newTestRuntime(t)
	for _, c := range ruleCases {
		t.Run(c.name, func(t *testing.T) {
			elem, tol, h := onnxpb.TensorProto_DOUBLE, tolF64, hF64
			if c.float32 {
				elem, tol, h = onnxpb.TensorProto_FLOAT, tolF32, hF32
				if c.kinked {
					h = hF32Kinked
				}
			}
			m, diff := caseModel(c, elem)
			checkFiniteDifferences(t, rt, m, diff, caseFeeds(c), tol, h)
		})
	}
}

// checkFiniteDifferences compares the VJP of m's output y with respect to
// the graph inputs wrt, on feeds, with central differences of step h along
// three random directions.
func checkFiniteDifferences(t *testing.T, rt *testRuntime, m *onnxpb.ModelProto, wrt []string, feeds map[string]*testTensor, tol, h float64) {
	t.Helper()
	res, err := Build(m, Options{Mode: VJP, WRT: wrt, File: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	y := rt.run(t, m, feeds, []string{"y"})["y"]
	rng := rand.New(rand.NewPCG(7, uint64(len(t.Name()))))
	v := &testTensor{shape: y.shape, data: randn(rng, len(y.data))}
	feeds[res.Seed] = v
	grads := rt.run(t, res.Model, feeds, res.Grads)
	delete(feeds, res.Seed)
	for probe := range 3 {
		u := map[string][]float64{}
		var predicted float64
		for i, w := range res.WRT {
			u[w] = randn(rng, len(feeds[w].data))
			predicted += dot(grads[res.Grads[i]].data, u[w])
		}
		fPlus := rt.run(t, m, shifted(feeds, u, h), []string{"y"})["y"]
		fMinus := rt.run(t, m, shifted(feeds, u, -h), []string{"y"})["y"]
		var measured float64
		for j := range v.data {
			measured += v.data[j] * (fPlus.data[j] - fMinus.data[j]) / (2 * h)
		}
		if diff := math.Abs(measured - predicted); diff > tol*(1+math.Abs(measured)) {
			t.Errorf("probe %d: ⟨VJP(v), u⟩ = %.9g, finite difference = %.9g (|Δ| = %.3g > tol %.3g)", probe, predicted, measured, diff, tol*(1+math.Abs(measured)))
		}
	}
}

// TestRuleJacobianMode checks each rule with the leading class axis: the
// Jacobian mode's row l of sample n must equal the VJP with a one-hot
// cotangent at flat output position l, for ops that keep samples apart.
// The output is flattened to [N, M] first so that every op can be seen as a
// classifier.
func TestRuleJacobianMode(t *testing.T) {
	rt := newTestRuntime(t)
	for _, c := range ruleCases {
		if c.mixesBatch {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			elem := onnxpb.TensorProto_DOUBLE
			if c.float32 {
				elem = onnxpb.TensorProto_FLOAT
			}
			m, _ := caseModel(c, elem)
			flattenOutput(m)
			first := c.inputs[0].shape
			if i := slices.IndexFunc(c.inputs, caseInput.isGraphInput); i > 0 {
				first = c.inputs[i].shape // after Where's condition
			}
			if len(first) == 0 || c.inputs[0].fixed {
				t.Skip("first input is not batched")
			}
			// Jacobian with respect to the inputs with the batch axis.
			var wrt []string
			for i, in := range c.inputs {
				if in.isGraphInput() && len(in.shape) > 0 && in.shape[0] == first[0] {
					wrt = append(wrt, inputName(i))
				}
			}
			jac, err := Build(m, Options{Mode: Jacobian, WRT: wrt, File: c.name})
			if err != nil {
				t.Fatal(err)
			}
			vjp, err := Build(m, Options{Mode: VJP, WRT: wrt, File: c.name})
			if err != nil {
				t.Fatal(err)
			}
			feeds := caseFeeds(c)
			out := rt.run(t, jac.Model, feeds, append([]string{"y"}, jac.Grads...))
			y := out["y"]
			n, k := y.shape[0], y.shape[1]
			for l := range k {
				seed := &testTensor{shape: y.shape, data: make([]float64, len(y.data))}
				for s := range n {
					seed.data[s*k+l] = 1
				}
				feeds[vjp.Seed] = seed
				g := rt.run(t, vjp.Model, feeds, vjp.Grads)
				for wi, name := range jac.Grads {
					J := out[name]
					want := g[vjp.Grads[wi]]
					per := int64(len(want.data)) / n
					for s := range n {
						for e := range per {
							got := J.data[(s*k+l)*per+e]
							exp := want.data[s*per+e]
							if math.Abs(got-exp) > 1e-5*(1+math.Abs(exp)) {
								t.Fatalf("%s: J[%d,%d,%d] = %g, VJP with one-hot seed gives %g", wrt[wi], s, l, e, got, exp)
							}
						}
					}
				}
			}
		})
	}
}

// caseFeeds returns the values of the case's graph inputs.
func caseFeeds(c ruleCase) map[string]*testTensor {
	feeds := map[string]*testTensor{}
	for i, in := range c.inputs {
		if in.isGraphInput() {
			feeds[inputName(i)] = &testTensor{shape: caseShape(in), data: caseValues(c, in, i)}
		}
	}
	return feeds
}

// flattenOutput appends Flatten(axis=1) after the last node so that the
// output is [N, M].
func flattenOutput(m *onnxpb.ModelProto) {
	g := m.GetGraph()
	g.Node[len(g.Node)-1].Output[0] = "y_unflat"
	g.Node = append(g.Node, &onnxpb.NodeProto{Name: ptr("flatten"), OpType: ptr("Flatten"), Input: []string{"y_unflat"}, Output: []string{"y"}, Attribute: []*onnxpb.AttributeProto{attrInt("axis", 1)}})
}

func ptr(s string) *string { return &s }

func inputName(i int) string { return "in" + string(rune('0'+i)) }

func randn(rng *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return v
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// shifted returns feeds with x + h·u for the tensors in u.
func shifted(feeds map[string]*testTensor, u map[string][]float64, h float64) map[string]*testTensor {
	out := map[string]*testTensor{}
	for name, t := range feeds {
		d, ok := u[name]
		if !ok {
			out[name] = t
			continue
		}
		s := &testTensor{shape: t.shape, data: make([]float64, len(t.data))}
		for i := range s.data {
			s.data[i] = t.data[i] + h*d[i]
		}
		out[name] = s
	}
	return out
}
