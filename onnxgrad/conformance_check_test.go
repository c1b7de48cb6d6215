package onnxgrad

// The two checks of the ONNX conformance test: inferred shapes against the
// shapes of the expected outputs, and VJPs against finite differences
// through onnxruntime.

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// shapeVerdict is the outcome of the shape check of one test.
type shapeVerdict int

const (
	shapeMatch   shapeVerdict = iota
	shapeUnknown              // an op without a shape rule left an output unknown
	shapeGaveUp               // an op with a shape rule failed or left an output unknown
	shapeFail                 // an inferred shape or element type differs from the expected one
)

type shapeResult struct {
	verdict shapeVerdict
	detail  string
}

// checkShapes runs onnxgrad's inference on p's model and compares each
// output with the expected one's element type and dims. The float inputs
// are frozen too, as an exporter leaves everything but the data (whose
// initializer has the declared shape): Resize's scales, OneHot's depth
// or Range's limits decide shapes only as constants. The outputs'
// declarations are dropped, since inference falls back on them.
func checkShapes(t *nodeTest, p *preparedTest) (res shapeResult) {
	defer func() {
		if e := recover(); e != nil {
			res = shapeResult{verdict: shapeFail, detail: panicMessage("inference", e)}
		}
	}()
	m := freezeInputs(p.model, p, nil)
	g := m.GetGraph()
	g.ValueInfo = nil
	for _, vi := range g.GetOutput() {
		vi.Type = nil
	}
	gr := newGraph(m, t.name)
	gr.infer()
	res.verdict = shapeMatch
	var problems []string
	for i, vi := range g.GetOutput() {
		want := t.outputs[i]
		wantElem := t.outputElem(i)
		info := gr.info[vi.GetName()]
		switch {
		case info == nil || !info.hasShape:
			res.verdict = max(res.verdict, shapeUnknown)
		case info.elem != onnxpb.TensorProto_UNDEFINED && info.elem != wantElem,
			!shapeMatches(info.shape, want.GetDims()):
			res.verdict = shapeFail
			problems = append(problems, fmt.Sprintf("output %q: inferred %v, expected %s%v", vi.GetName(), info, wantElem, want.GetDims()))
		case !isStatic(info.shape):
			res.verdict = max(res.verdict, shapeUnknown)
		}
	}
	switch res.verdict {
	case shapeFail:
		res.detail = strings.Join(problems, "; ")
	case shapeUnknown:
		res.verdict, res.detail = unknownCause(gr)
	}
	return res
}

// shapeMatches reports whether the known dims of s equal want (unknown
// ones are not a mismatch).
func shapeMatches(s Shape, want []int64) bool {
	if len(s) != len(want) {
		return false
	}
	for i, d := range s {
		if d.Known() && d.Value != want[i] {
			return false
		}
	}
	return true
}

func isStatic(s Shape) bool {
	_, ok := s.Static()
	return ok
}

// unknownCause says why inference left an output unknown: the first node
// that either has no shape rule (shapeUnknown) or whose rule failed
// (shapeGaveUp). When there is neither, a rule returned without deciding.
func unknownCause(gr *graph) (shapeVerdict, string) {
	for _, n := range gr.g.GetNode() {
		if err := gr.inferErr[n]; err != nil {
			return shapeGaveUp, err.Error()
		}
		if shapeRule(n) == nil {
			return shapeUnknown, "no shape rule for " + qualifiedOp(n)
		}
	}
	return shapeGaveUp, "the shape rules left an output unknown without an error"
}

func (r shapeResult) String() string {
	s := [...]string{shapeMatch: "match", shapeUnknown: "unknown", shapeGaveUp: "rule gave up", shapeFail: "FAIL"}[r.verdict]
	if r.detail != "" {
		s += " (" + r.detail + ")"
	}
	return s
}

// gradVerdict is the outcome of the gradient check of one test.
type gradVerdict int

const (
	gradSkipped gradVerdict = iota // not checked; gradResult.reason says why
	gradPassed                     // the VJP matches central differences
	gradKinked                     // the test point is (near) a kink or a jump: one-sided derivatives differ, or f is discontinuous
	gradFailed                     // Build failed, onnxruntime rejected its graph, or the VJP is wrong
)

type gradResult struct {
	verdict gradVerdict
	reason  string
	// notChecked lists the float inputs and outputs left out of the check
	// while others are checked: inputs no rule differentiates, and inputs
	// or outputs Build refuses with a NodeError (an unsupported form of an
	// op, such as LayerNormalization's Mean output or Resize's scales).
	notChecked []string
	// built is true when Build made a VJP graph for at least one output.
	built bool
}

func (r gradResult) String() string {
	s := [...]string{gradSkipped: "not checked", gradPassed: "pass", gradKinked: "kink", gradFailed: "FAIL"}[r.verdict]
	if r.reason != "" {
		s += " (" + r.reason + ")"
	}
	return s
}

// worse returns whichever of a and b says more about a test: a failure, a
// kink, a pass, a skip in this order; b when they rank the same.
func worse(a, b gradResult) gradResult {
	rank := [...]int{gradSkipped: 0, gradPassed: 1, gradKinked: 2, gradFailed: 3}
	if rank[b.verdict] >= rank[a.verdict] {
		return b
	}
	return a
}

// Finite differences on the node tests. The first step and the relative
// tolerance are fdcheck_test.go's (hF32/tolF32, hF64/tolF64). Unlike its
// cases, the node tests come with inputs of any magnitude and with kinks
// (Relu at 0, ties in MaxPool), so each probe tries the steps h, h/10 and
// h/100 in turn and compares each with the one before (fdCheck.probe); the
// tolerance adds estimates of rounding and truncation error to the
// relative tolerance.
const (
	fdProbes = 3
	// fdNoiseULPs is the rounding error, in units of the element type's
	// epsilon, allowed per output value and per input term. Rounding errors
	// of different elements are independent and add up like a random walk
	// (root of the sum of squares); onnxruntime's CPU kernels round each
	// value to within a couple of ulps, so 8 leaves several standard
	// deviations of margin.
	fdNoiseULPs = 8
	// fdStepRatio divides the step from one try to the next.
	fdStepRatio = 10
	// fdMaxPerturbed bounds the input elements a probe perturbs. Along a
	// dense direction through a large input, piecewise-linear ops meet
	// kinks within any usable step: MaxPool 2×2×2 over 98,304 values has
	// about 250 windows whose argmax switches within ±10⁻³ and 25 within
	// ±10⁻⁴ (the gap between a window's two largest values is below δ
	// with probability ≈ 3δ), each adding an error of order one. 256
	// elements touch at most 2,048 windows: a few switches at 10⁻³, none
	// at 10⁻⁴ in most probes.
	fdMaxPerturbed = 256
)

// checkGrads differentiates every float32/float64 output of p's model with
// respect to the float inputs on its path, and compares each VJP with
// central differences along random directions.
func checkGrads(t *nodeTest, p *preparedTest, rng *rand.Rand) (res gradResult) {
	defer func() {
		if e := recover(); e != nil {
			res = gradResult{verdict: gradFailed, reason: panicMessage("Build", e)}
		}
	}()
	m := proto.Clone(p.model).(*onnxpb.ModelProto)
	g := m.GetGraph()
	// Only float outputs are differentiated, and the tests read only those.
	var outs []*onnxpb.ValueInfoProto
	var other []string
	for i, vi := range g.GetOutput() {
		if dt := t.outputElem(i); isRunnableFloat(dt) {
			outs = append(outs, vi)
		} else {
			other = append(other, dt.String())
		}
	}
	if len(outs) == 0 {
		return gradResult{reason: "no float32/float64 output: " + strings.Join(slices.Compact(other), ", ")}
	}
	g.Output = outs
	vjps, res := buildVJPs(t.name, m, p)
	if len(vjps) == 0 {
		return res
	}
	res.built = true
	var verdict gradResult
	for _, v := range vjps {
		verdict = worse(verdict, checkVJP(v, p.feeds, rng))
	}
	res.verdict, res.reason = verdict.verdict, verdict.reason
	return res
}

// A vjp is a VJP graph and the forward model it was built from, whose graph
// inputs are the differentiated inputs; the other float inputs are frozen.
type vjp struct {
	forward *onnxpb.ModelProto
	*Result
}

// buildVJPs builds a VJP graph for each output of m with respect to the
// float inputs on its path that the rules differentiate, each tried alone
// first (with the other float inputs frozen, as an exporter leaves
// everything but the data). Inputs without a gradient and inputs or outputs
// that Build refuses with a NodeError are listed in res.notChecked as long
// as something else is checked; with nothing left, a refusal fails the
// test. It returns no graph and a skip reason when an op on a path has no
// gradient rule, and a failure when Build fails otherwise.
func buildVJPs(name string, m *onnxpb.ModelProto, p *preparedTest) (vjps []vjp, res gradResult) {
	gr := newGraph(proto.Clone(m).(*onnxpb.ModelProto), name)
	gr.infer()
	if gr.opset < minUpgradableOpset {
		return nil, gradResult{reason: fmt.Sprintf("opset older than onnxgrad reads: %d < %d", gr.opset, minUpgradableOpset)}
	}
	var refusal error
	// build returns Build's VJP of output with respect to wrt, with the
	// other float inputs frozen; a NodeError is recorded as a refusal of
	// what (nil, nil), other errors returned.
	build := func(output string, wrt []string, what string) (*vjp, error) {
		fm := freezeInputs(m, p, wrt)
		r, err := Build(fm, Options{Mode: VJP, Output: output, WRT: wrt, File: name})
		var nerr *NodeError
		if errors.As(err, &nerr) {
			if refusal == nil {
				refusal = err
			}
			res.notChecked = append(res.notChecked, fmt.Sprintf("%s (%s refuses: %s)", what, nerr.OpType, nerr.Msg))
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &vjp{fm, r}, nil
	}
	for _, vi := range m.GetGraph().GetOutput() {
		path, diff := differentiablePath(gr.g, gr, p.floats, vi.GetName())
		if u := unsupportedOps(path, name); len(u) > 0 {
			return nil, gradResult{reason: "no gradient rule: " + u[0].OpType}
		}
		var wrt []string
		for _, w := range p.floats {
			if !diff[w] {
				continue
			}
			v, err := build(vi.GetName(), []string{w}, fmt.Sprintf("output %q, input %q", vi.GetName(), w))
			switch {
			case errors.Is(err, ErrNotDifferentiable):
				res.notChecked = append(res.notChecked, fmt.Sprintf("output %q, input %q (no gradient)", vi.GetName(), w))
			case err != nil:
				return nil, gradResult{verdict: gradFailed, reason: "Build: " + err.Error()}
			case v != nil:
				wrt = append(wrt, w)
			}
		}
		if len(wrt) == 0 {
			continue
		}
		v, err := build(vi.GetName(), wrt, fmt.Sprintf("output %q", vi.GetName()))
		if err != nil {
			return nil, gradResult{verdict: gradFailed, reason: "Build: " + err.Error()}
		}
		if v != nil {
			vjps = append(vjps, *v)
		}
	}
	switch {
	case len(vjps) > 0:
	case refusal != nil:
		return nil, gradResult{verdict: gradFailed, reason: "Build: " + refusal.Error()}
	default:
		res.reason = "no float input is differentiated"
	}
	return vjps, res
}

// freezeInputs returns m with the float graph inputs other than keep turned
// into initializers holding their test values.
func freezeInputs(m *onnxpb.ModelProto, p *preparedTest, keep []string) *onnxpb.ModelProto {
	m = proto.Clone(m).(*onnxpb.ModelProto)
	g := m.GetGraph()
	var kept []*onnxpb.ValueInfoProto
	for _, vi := range g.GetInput() {
		f := p.feeds[vi.GetName()]
		if f == nil || slices.Contains(keep, vi.GetName()) {
			kept = append(kept, vi)
			continue
		}
		elem := onnxpb.TensorProto_DataType(vi.GetType().GetTensorType().GetElemType())
		g.Initializer = append(g.Initializer, newTensorFloat(vi.GetName(), elem, f.shape, f.data))
	}
	g.Input = kept
	return m
}

// checkVJP runs v's forward model and its VJP graph on the test point with
// a random cotangent, and compares the VJP with finite differences of the
// forward model along fdProbes random directions.
func checkVJP(v vjp, x map[string]*testTensor, rng *rand.Rand) gradResult {
	feeds := map[string]*testTensor{}
	for _, w := range v.WRT {
		feeds[w] = x[w]
	}
	fwd, err := newTestSession(v.forward)
	if err != nil {
		return gradResult{reason: "onnxruntime cannot run the model: " + firstLine(err.Error())}
	}
	defer fwd.close()
	f0, err := fwd.run(feeds)
	if err != nil {
		return gradResult{reason: "onnxruntime cannot run the model: " + firstLine(err.Error())}
	}
	if again, err := fwd.run(feeds); err != nil || !sameOutputs(f0, again) {
		return gradResult{reason: "random output"}
	}
	y := f0[v.Output]
	if !allFinite(y.data) {
		return gradResult{reason: fmt.Sprintf("output %q: non-finite values at the test point", v.Output)}
	}
	cot := &testTensor{shape: y.shape, data: randn(rng, len(y.data))}
	sess, err := newTestSession(v.Model)
	if err != nil {
		return gradResult{verdict: gradFailed, reason: "onnxruntime rejects the gradient graph: " + firstLine(err.Error())}
	}
	defer sess.close()
	withSeed := maps.Clone(feeds)
	withSeed[v.Seed] = cot
	gout, err := sess.run(withSeed)
	if err != nil {
		return gradResult{verdict: gradFailed, reason: "running the gradient graph: " + firstLine(err.Error())}
	}
	c := &fdCheck{fwd: fwd, x: feeds, out: v.Output, v: cot.data, f0: y.data, wrt: v.WRT,
		grads: map[string][]float64{}, float32: map[string]bool{}, elem: onnxpb.TensorProto_DOUBLE}
	// A non-finite gradient fails the probes unless f is not finite around
	// the point either (Pow at x = 0): not differentiable there.
	for i, w := range v.WRT {
		c.grads[w] = gout[v.Grads[i]].data
	}
	// Float32 rounding anywhere (the output, a perturbed input) sets the
	// step and tolerance.
	isFloat32 := func(vi *onnxpb.ValueInfoProto) bool {
		return vi.GetType().GetTensorType().GetElemType() == int32(onnxpb.TensorProto_FLOAT)
	}
	g := v.Model.GetGraph()
	for _, vi := range g.GetInput() {
		if c.float32[vi.GetName()] = isFloat32(vi); c.float32[vi.GetName()] && slices.Contains(c.wrt, vi.GetName()) {
			c.elem = onnxpb.TensorProto_FLOAT
		}
	}
	for _, vi := range g.GetOutput() {
		if vi.GetName() == v.Output && isFloat32(vi) {
			c.elem = onnxpb.TensorProto_FLOAT
		}
	}
	var verdict gradResult
	for range fdProbes {
		r, err := c.probe(c.direction(rng))
		if err != nil {
			return gradResult{verdict: gradFailed, reason: "running the model: " + firstLine(err.Error())}
		}
		verdict = worse(verdict, r)
	}
	if verdict.reason != "" {
		verdict.reason = fmt.Sprintf("output %q: %s", v.Output, verdict.reason)
	}
	return verdict
}

// fdCheck holds what the probes of one output share.
type fdCheck struct {
	fwd   *testSession
	x     map[string]*testTensor // the test point
	out   string
	v     []float64 // the cotangent
	f0    []float64 // the output at x
	wrt   []string
	grads map[string][]float64 // the VJP with respect to each wrt input
	// float32 marks float32 inputs (perturbed points are rounded to them).
	float32 map[string]bool
	// elem is FLOAT when the output or a differentiated input is float32.
	elem onnxpb.TensorProto_DataType
}

// direction returns a random direction over the differentiated inputs:
// normal values on at most fdMaxPerturbed randomly chosen elements, zeros
// elsewhere.
func (c *fdCheck) direction(rng *rand.Rand) map[string][]float64 {
	n := 0
	for _, w := range c.wrt {
		n += len(c.x[w].data)
	}
	keep := make([]bool, n)
	for _, i := range rng.Perm(n)[:min(n, fdMaxPerturbed)] {
		keep[i] = true
	}
	u := map[string][]float64{}
	for _, w := range c.wrt {
		u[w] = make([]float64, len(c.x[w].data))
		for i := range u[w] {
			if keep[0] {
				u[w][i] = rng.NormFloat64()
			}
			keep = keep[1:]
		}
	}
	return u
}

// fdStep is what one step size s along one direction gives.
type fdStep struct {
	s float64
	// central is ⟨v, f(x⁺) − f(x⁻)⟩/2s and predicted ⟨VJP(v), x⁺ − x⁻⟩/2s,
	// where x± = x ± s·u rounded to the inputs' type.
	central, predicted float64
	// curv is the difference of the right and left one-sided slopes, each
	// less the VJP's prediction: (⟨v, f(x⁺) − f(x)⟩ − ⟨VJP(v), x⁺ − x⟩)/s −
	// (⟨v, f(x) − f(x⁻)⟩ − ⟨VJP(v), x − x⁻⟩)/s. Where f is smooth it is
	// s·⟨v, f″(x)[u, u]⟩ up to rounding, shrinking with s; across a kink it
	// is the jump of the slope, whatever s.
	curv float64
	// noise estimates the rounding error of central: fdNoiseULPs rounding
	// errors of each output value and of each input's contribution.
	noise float64
	// nonFinite is true when f(x±) has Inf or NaN values (the step leaves
	// the op's domain).
	nonFinite bool
}

func (c *fdCheck) params() (h, tol, eps float64) {
	if c.elem == onnxpb.TensorProto_FLOAT {
		return hF32, tolF32, 0x1p-24
	}
	return hF64, tolF64, 0x1p-53
}

// slack is the error allowed in b's central difference: the relative
// tolerance and the rounding error.
func (b fdStep) slack(tol float64) float64 {
	return tol*max(math.Abs(b.central), math.Abs(b.predicted)) + b.noise
}

// truncation estimates the truncation error of b's central difference from
// the larger step a's. Where f is smooth both are f′ + K·s² + O(s⁴); where
// f is piecewise smooth with many kinks near x (MaxPool over thousands of
// windows, each switching its argmax at some distance) the kinks within
// reach add an error that grows like s. Taking the error as linear in s,
// b's is about |central_a − central_b|·s_b/(s_a − s_b): a bound in the
// second case, and for smooth f an overestimate of a quantity far below
// the slack.
func truncation(a, b fdStep) float64 {
	return math.Abs(a.central-b.central) * b.s / (a.s - b.s)
}

// kinked reports whether the slopes' difference fails to shrink from step a
// to the smaller step b: where f is smooth it shrinks in proportion to the
// step, while a kink within b's reach keeps it at the jump of the slope.
// "Fails to shrink" is "keeps more than half", between the smooth ratio
// 1/fdStepRatio and the kink's 1 (higher-order terms at the larger step
// can move the smooth ratio away from 1/fdStepRatio). Differences within
// the rounding error of curv (which has four function values over s where
// central has two over 2s: 3× its noise bounds it) are no kink.
func kinked(a, b fdStep, tol float64) bool {
	d := math.Abs(b.curv)
	return d > b.slack(tol)+2*b.noise && d > 0.5*math.Abs(a.curv)
}

// jumped reports whether f itself jumps within b's reach (Sign at 0, Floor
// at an integer): ⟨v, f(x⁺) − f(x⁻)⟩ = 2s·central, which shrinks in
// proportion to the step where f is continuous, keeps more than half from
// a to b, and b's central difference is off the VJP beyond its slack. A
// jump symmetric about x (Sign at 0) leaves the one-sided slopes equal, so
// kinked does not see it.
func jumped(a, b fdStep, tol float64) bool {
	return math.Abs(b.central-b.predicted) > b.slack(tol) && b.s*math.Abs(b.central) > 0.5*a.s*math.Abs(a.central)
}

// probe checks direction u with the steps h, h/10 and h/100, each against
// the one before. A kink if the slopes' difference does not shrink from one
// step to the next, or if f jumps. A pass if the central difference at
// h/10 agrees with the VJP within its slack and the truncation error
// estimated from h; or, when it does not but lies farther from h/100's
// than h/100's lies from the VJP (a kink between h/100 and h/10 spoiled
// it), if h/100's agrees. A failure otherwise. Steps where f is not finite (the op's domain ends near
// the point) are left out; the probe is skipped if that leaves no pair.
func (c *fdCheck) probe(u map[string][]float64) (gradResult, error) {
	h, tol, _ := c.params()
	var prev *fdStep
	var failure string
	for i := range 3 {
		st, err := c.step(u, h/math.Pow(fdStepRatio, float64(i)))
		if err != nil {
			return gradResult{}, err
		}
		if st.nonFinite {
			prev = nil
			continue
		}
		if prev != nil {
			if kinked(*prev, st, tol) {
				return gradResult{verdict: gradKinked, reason: fmt.Sprintf("kink: one-sided slopes differ by %.3g at step %g and by %.3g at step %g", prev.curv, prev.s, st.curv, st.s)}, nil
			}
			if jumped(*prev, st, tol) {
				return gradResult{verdict: gradKinked, reason: fmt.Sprintf("jump: central differences %.3g at step %g and %.3g at step %g", prev.central, prev.s, st.central, st.s)}, nil
			}
			allowed := st.slack(tol) + truncation(*prev, st)
			d := math.Abs(st.central - st.predicted)
			// A later pair counts only if its larger step's central difference
			// is the outlier: farther from the smaller step's than the VJP is.
			spoiled := math.Abs(prev.central-st.central) > d
			if d <= allowed && (failure == "" || spoiled) {
				return gradResult{verdict: gradPassed}, nil
			}
			if failure == "" {
				failure = fmt.Sprintf("⟨VJP(v), u⟩ = %.6g, central difference = %.6g at step %g (|Δ| = %.3g > %.3g)", st.predicted, st.central, st.s, d, allowed)
			}
		}
		prev = &st
	}
	if failure == "" {
		return gradResult{verdict: gradSkipped, reason: "non-finite values near the test point"}, nil
	}
	return gradResult{verdict: gradFailed, reason: failure}, nil
}

// step evaluates f at x ± s·u.
func (c *fdCheck) step(u map[string][]float64, s float64) (fdStep, error) {
	_, _, eps := c.params()
	st := fdStep{s: s}
	plus, minus := maps.Clone(c.x), maps.Clone(c.x)
	var predPlus, predMinus, inputNoise float64
	for _, w := range c.wrt {
		x := c.x[w]
		xp := &testTensor{shape: x.shape, data: make([]float64, len(x.data))}
		xm := &testTensor{shape: x.shape, data: make([]float64, len(x.data))}
		g := c.grads[w]
		for i, xi := range x.data {
			xp.data[i], xm.data[i] = xi+s*u[w][i], xi-s*u[w][i]
			if c.float32[w] {
				xp.data[i], xm.data[i] = float64(float32(xp.data[i])), float64(float32(xm.data[i]))
			}
			predPlus += g[i] * (xp.data[i] - xi)
			predMinus += g[i] * (xi - xm.data[i])
			inputNoise += sq(g[i] * (math.Abs(xp.data[i]) + math.Abs(xm.data[i])))
		}
		plus[w], minus[w] = xp, xm
	}
	fp, err := c.fwd.run(plus)
	if err != nil {
		return st, err
	}
	fm, err := c.fwd.run(minus)
	if err != nil {
		return st, err
	}
	yp, ym := fp[c.out].data, fm[c.out].data
	if !allFinite(yp) || !allFinite(ym) {
		st.nonFinite = true
		return st, nil
	}
	var right, left, outputNoise float64
	for j, vj := range c.v {
		right += vj * (yp[j] - c.f0[j])
		left += vj * (c.f0[j] - ym[j])
		outputNoise += sq(vj * (math.Abs(yp[j]) + math.Abs(ym[j])))
	}
	st.central = (right + left) / (2 * s)
	st.predicted = (predPlus + predMinus) / (2 * s)
	st.curv = ((right - predPlus) - (left - predMinus)) / s
	st.noise = fdNoiseULPs * eps * (math.Sqrt(outputNoise) + math.Sqrt(inputNoise)) / (2 * s)
	return st, nil
}

func sq(x float64) float64 { return x * x }

func allFinite(v []float64) bool {
	for _, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return false
		}
	}
	return true
}

// sameOutputs reports whether two runs gave bit-identical outputs.
func sameOutputs(a, b map[string]*testTensor) bool {
	for k, t := range a {
		u := b[k]
		if u == nil || !slices.Equal(t.shape, u.shape) || len(t.data) != len(u.data) {
			return false
		}
		for i := range t.data {
			if math.Float64bits(t.data[i]) != math.Float64bits(u.data[i]) {
				return false
			}
		}
	}
	return true
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// panicMessage describes a panic recovered from what (inference, Build)
// with the onnxgrad source line that raised it.
func panicMessage(what string, e any) string {
	pc := make([]uintptr, 32)
	frames := runtime.CallersFrames(pc[:runtime.Callers(3, pc)])
	for {
		f, more := frames.Next()
		if strings.Contains(f.File, "/onnxgrad/") && !strings.HasSuffix(f.File, "_test.go") {
			return fmt.Sprintf("%s panics at %s:%d: %v", what, filepath.Base(f.File), f.Line, e)
		}
		if !more {
			return fmt.Sprintf("%s panics: %v", what, e)
		}
	}
}
