package onnxgrad

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/marginaudit/marginaudit/internal/ort/orttest"
)

// defaultONNXTestData is where Debian's libonnx-testdata installs ONNX's
// backend node tests; $ONNX_TESTDATA_DIR overrides it.
const defaultONNXTestData = "/usr/share/libonnx-testdata/data/node"

// knownConformanceFailures maps the node tests expected to fail to the
// reason. A listed test that passes fails the conformance test, so that the
// list stays honest: remove a test from it once its failure is fixed.
var knownConformanceFailures = func() map[string]string {
	m := map[string]string{}
	for _, k := range []struct {
		reason string
		tests  []string
	}{
		// Bugs, reported with their fix.
		{"bug: the gradient's Reshape back to Shape(x) has allowzero=0, so the 0 dim of an empty tensor is read as 'copy this dim' (gradCtx.reshapeLike, grad.go)", []string{
			"test_reshape_allowzero_reordered",
		}},
		// Shapes that depend on the values of float inputs, which the test
		// feeds at run time: no static shape exists.
		{"data-dependent shape: OneHot's depth is a float input fed at run time", []string{
			"test_onehot_negative_indices",
			"test_onehot_with_axis",
			"test_onehot_with_negative_axis",
			"test_onehot_without_axis",
		}},
		{"data-dependent shape: Range of float inputs fed at run time", []string{
			"test_range_float_type_positive_delta",
		}},
		// Forms refused by design, with an error that says so.
		{"refused: Dropout with training_mode=true (gradDropout); its mask output's shape is not inferred either", []string{
			"test_training_dropout",
			"test_training_dropout_default",
			"test_training_dropout_default_mask",
			"test_training_dropout_mask",
			"test_training_dropout_zero_ratio",
			"test_training_dropout_zero_ratio_mask",
		}},
		{"refused: BatchNormalization with training_mode=1 (shape and gradient rules)", []string{
			"test_batchnorm_epsilon_training_mode",
			"test_batchnorm_example_training_mode",
		}},
		{"refused: MaxPool with storage_order=1 (gradMaxPool)", []string{
			"test_maxpool_with_argmax_2d_precomputed_strides",
		}},
		{"refused: Resize with coordinate_transformation_mode tf_crop_and_resize (its roi is not a linear map of the input alone)", []string{
			"test_resize_tf_crop_and_resize",
		}},
		{"refused: Einsum with an index repeated within one operand (a diagonal or trace)", []string{
			"test_einsum_batch_diagonal",
		}},
	} {
		for _, t := range k.tests {
			m[t] = k.reason
		}
	}
	return m
}()

// TestONNXConformance runs ONNX's own backend node tests through onnxgrad.
// Every test with a float32/float64 input is checked; its other inputs
// (shapes, axes, indices) are frozen into initializers holding the test's
// values, as exporters write them:
//
//   - shapes: onnxgrad's inference must give each output the element type
//     and dims of the expected output (checkShapes). Outputs left unknown by
//     an op without a shape rule are counted apart; a shape rule that fails
//     or gives up fails the test.
//   - gradients: for each float output, Build's VJP with respect to the
//     float inputs on its path that the rules differentiate, run in
//     onnxruntime on the test's inputs with a random cotangent, must match
//     central differences along random directions (checkGrads; each output
//     has its own cotangent). Points where the one-sided slopes differ are
//     kinks, skipped rather than passed. Ops without a gradient rule,
//     integer outputs and models onnxruntime cannot run are skipped. Build
//     failing fails the test, except that a NodeError refusing some inputs
//     or outputs while others are checked (LayerNormalization's Mean) is
//     only listed in the report.
//
// Failures fail the test unless knownConformanceFailures lists the test. It
// logs a table per op and the totals (go test -v -run TestONNXConformance
// ./onnxgrad) and writes them to the file $ONNX_CONFORMANCE_REPORT names
// (`make conformance`). Each node test is a subtest, which -run
// 'TestONNXConformance/test_relu$' runs alone.
func TestONNXConformance(t *testing.T) {
	dir := onnxTestDataDir(t)
	newTestRuntime(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]*nodeTest{}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	var results []*conformanceResult
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			r := &conformanceResult{test: name}
			results = append(results, r)
			nt, err := loadNodeTest(filepath.Join(dir, name))
			switch {
			case errors.Is(err, errNotTensor):
				tests[name] = nt
				r.skip = "non-tensor input or output"
			case err != nil:
				r.skip = "unreadable"
				t.Fatal(err)
			default:
				tests[name] = nt
				runNodeTest(t, nt, r)
			}
			if r.skip != "" {
				t.Skip(r.skip)
			}
		})
	}
	for _, r := range results {
		r.op = opLabel(tests, r.test)
	}
	report := conformanceReport(dir, results)
	t.Log("\n" + report)
	if path := os.Getenv("ONNX_CONFORMANCE_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// onnxTestDataDir returns the node tests' folder, stopping the test when it
// is missing: with a failure in CI (where `make onnx-testdata` installs it),
// with a skip elsewhere.
func onnxTestDataDir(t *testing.T) string {
	dir := cmp.Or(os.Getenv("ONNX_TESTDATA_DIR"), defaultONNXTestData)
	if _, err := os.Stat(dir); err != nil {
		msg := fmt.Sprintf("ONNX's node tests are not installed (%v); install Debian's libonnx-testdata (make onnx-testdata) or set $ONNX_TESTDATA_DIR", err)
		if orttest.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dir
}

// conformanceResult is the outcome of one node test.
type conformanceResult struct {
	test  string
	op    string
	skip  string // why the test was not checked at all
	shape shapeResult
	grad  gradResult
}

// runNodeTest checks one test and reports its unexpected failures (and
// expected failures that no longer happen).
func runNodeTest(t *testing.T, nt *nodeTest, r *conformanceResult) {
	p, skip, err := prepare(nt)
	if err != nil {
		r.skip = "unreadable"
		t.Fatalf("%s: %v", nt.name, err)
	}
	if p == nil {
		r.skip = skip
		return
	}
	if n := inputElements(p); n > maxConformanceElements {
		r.skip = fmt.Sprintf("too large (%d input elements)", n)
		return
	}
	r.shape = checkShapes(nt, p)
	h := fnv.New64a()
	h.Write([]byte(nt.name))
	r.grad = checkGrads(nt, p, rand.New(rand.NewPCG(h.Sum64(), 1)))
	var problems []string
	if r.shape.verdict == shapeFail || r.shape.verdict == shapeGaveUp {
		problems = append(problems, "shape: "+r.shape.String())
	}
	if r.grad.verdict == gradFailed {
		problems = append(problems, "gradient: "+r.grad.reason)
	}
	t.Logf("shape: %s; gradient: %s", r.shape, r.grad)
	known, isKnown := knownConformanceFailures[nt.name]
	switch {
	case len(problems) > 0 && !isKnown:
		t.Error(strings.Join(problems, "\n"))
	case len(problems) > 0:
		t.Logf("known failure (%s): %s", known, strings.Join(problems, "\n"))
	case isKnown:
		t.Errorf("listed in knownConformanceFailures (%s) but passes: remove it from the list", known)
	}
}

// maxConformanceElements bounds the tests' input sizes, to keep the test
// fast on CI's two cores. ONNX 1.12's largest node tests (3-D pooling,
// 98,304 input elements) stay below it: the whole run takes a few seconds.
const maxConformanceElements = 1 << 18

func inputElements(p *preparedTest) int {
	n := 0
	for _, f := range p.feeds {
		n += len(f.data)
	}
	return n
}

// opLabel names the op a test is about: its one node's op (Constant nodes
// aside) or, for a function-expanded test (test_x_expanded), "Op
// (expanded)" after its unexpanded twin test_x.
func opLabel(tests map[string]*nodeTest, name string) string {
	single := func(name string) string {
		nt := tests[name]
		if nt == nil {
			return ""
		}
		var ops []string
		for _, n := range nt.model.GetGraph().GetNode() {
			if n.GetOpType() != "Constant" || len(nt.model.GetGraph().GetNode()) == 1 {
				ops = append(ops, qualifiedOp(n))
			}
		}
		if len(ops) == 1 {
			return ops[0]
		}
		return ""
	}
	if op := single(name); op != "" {
		return op
	}
	if base, ok := strings.CutSuffix(name, "_expanded"); ok {
		if op := single(base); op != "" {
			return op + " (expanded)"
		}
	}
	if tests[name] == nil {
		return "(unreadable)"
	}
	return "(several ops)"
}

// opTally counts the outcomes of a set of tests (one op's, or all).
type opTally struct {
	tests, checked                                  int
	skips                                           map[string]int // why tests were not checked
	shape                                           [shapeFail + 1]int
	built                                           int // Build ran: a gradient rule for every op on the path
	gradPassed, gradFailed, gradKinked, gradSkipped int
	gradSkips                                       map[string]int // why gradients were not checked
}

func (o *opTally) add(r *conformanceResult) {
	if o.skips == nil {
		o.skips, o.gradSkips = map[string]int{}, map[string]int{}
	}
	o.tests++
	if r.skip != "" {
		o.skips[skipClass(r.skip)]++
		return
	}
	o.checked++
	o.shape[r.shape.verdict]++
	if r.grad.built || r.grad.verdict == gradFailed {
		o.built++
	}
	switch r.grad.verdict {
	case gradPassed:
		o.gradPassed++
	case gradFailed:
		o.gradFailed++
	case gradKinked:
		o.gradKinked++
	default:
		o.gradSkipped++
		o.gradSkips[skipClass(r.grad.reason)]++
	}
}

// conformanceReport renders the results: a table per op, the totals, the
// failures and whatever else a reader should see (shape rules that gave
// up, kinks, inputs left out) test by test, and the known failures.
func conformanceReport(dir string, results []*conformanceResult) string {
	tally := map[string]*opTally{}
	var total opTally
	for _, r := range results {
		if tally[r.op] == nil {
			tally[r.op] = &opTally{}
		}
		tally[r.op].add(r)
		total.add(r)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "ONNX backend node tests in %s\n\n", dir)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "op\ttests\tchecked\tshape ok\tfail\tunknown\tgave up\tgrad ok\tfail\tkink\tskip\tgrad skipped because")
	row := func(name string, o *opTally) {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", name, o.tests, o.checked,
			o.shape[shapeMatch], o.shape[shapeFail], o.shape[shapeUnknown], o.shape[shapeGaveUp],
			o.gradPassed, o.gradFailed, o.gradKinked, o.gradSkipped, reasons(o.gradSkips))
	}
	for _, op := range slices.Sorted(maps.Keys(tally)) {
		row(op, tally[op])
	}
	row("total", &total)
	w.Flush()

	fmt.Fprintf(&b, "\n%d tests; %d checked (a float32/float64 input), %d not: %s\n", total.tests, total.checked, total.tests-total.checked, reasons(total.skips))
	fmt.Fprintf(&b, "shapes: %d match, %d fail (mismatch or panic), %d unknown (no shape rule), %d unknown although a shape rule exists\n",
		total.shape[shapeMatch], total.shape[shapeFail], total.shape[shapeUnknown], total.shape[shapeGaveUp])
	fmt.Fprintf(&b, "gradients: %d differentiable (a gradient rule for every op on the path), %d pass finite differences, %d fail, %d at a kink, %d skipped after Build\n",
		total.built, total.gradPassed, total.gradFailed, total.gradKinked, total.built-total.gradPassed-total.gradFailed-total.gradKinked)

	known := func(r *conformanceResult) string {
		if _, ok := knownConformanceFailures[r.test]; ok {
			return "[known] "
		}
		return ""
	}
	for _, sec := range []struct {
		title string
		line  func(*conformanceResult) string // "" leaves the test out
	}{
		{"Shape failures", func(r *conformanceResult) string {
			return when(r.shape.verdict == shapeFail, known(r)+r.shape.detail)
		}},
		{"Gradient failures", func(r *conformanceResult) string {
			return when(r.grad.verdict == gradFailed, known(r)+r.grad.reason)
		}},
		{"Shape rules that gave up on static shapes", func(r *conformanceResult) string {
			return when(r.shape.verdict == shapeGaveUp, known(r)+r.shape.detail)
		}},
		{"Test points at a kink (gradient not checked)", func(r *conformanceResult) string {
			return when(r.grad.verdict == gradKinked, r.grad.reason)
		}},
		{"Gradients skipped after Build", func(r *conformanceResult) string {
			return when(r.grad.built && r.grad.verdict == gradSkipped, r.grad.reason)
		}},
		{"Float inputs and outputs left out of checked tests (no gradient, or Build refuses them)", func(r *conformanceResult) string {
			return when(r.grad.built, strings.Join(r.grad.notChecked, "; "))
		}},
	} {
		var lines []string
		for _, r := range results {
			if s := sec.line(r); r.skip == "" && s != "" {
				lines = append(lines, fmt.Sprintf("  %s (%s): %s", r.test, r.op, s))
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&b, "\n%s (%d):\n%s\n", sec.title, len(lines), strings.Join(lines, "\n"))
		}
	}

	byReason := map[string][]string{}
	for _, r := range results {
		if why, ok := knownConformanceFailures[r.test]; ok {
			byReason[why] = append(byReason[why], r.test)
		}
	}
	if len(byReason) > 0 {
		fmt.Fprintf(&b, "\nKnown failures (knownConformanceFailures):\n")
		for _, why := range slices.Sorted(maps.Keys(byReason)) {
			fmt.Fprintf(&b, "  %s: %s\n", why, strings.Join(byReason[why], ", "))
		}
	}
	return b.String()
}

// when returns s if cond holds, else "".
func when(cond bool, s string) string {
	if cond {
		return s
	}
	return ""
}

// skipClass shortens a skip reason to its class, for the tallies: the part
// before a colon.
func skipClass(reason string) string {
	c, _, _ := strings.Cut(reason, ":")
	return c
}

// reasons formats a tally of reasons, most frequent first.
func reasons(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(m[b]-m[a], strings.Compare(a, b)) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// TestJumped checks the jump test on central differences as a smooth
// function, a wrong VJP and a jump (Sign at 0: ⟨v, f(x⁺) − f(x⁻)⟩ stays
// near 2·1.09, test_sign's value) give them at the steps 10⁻² and 10⁻³.
func TestJumped(t *testing.T) {
	step := func(s, central, predicted float64) fdStep {
		return fdStep{s: s, central: central, predicted: predicted}
	}
	for _, tc := range []struct {
		name string
		a, b fdStep
		want bool
	}{
		{"smooth", step(1e-2, 2.0001, 2), step(1e-3, 2.000001, 2), false},
		{"wrong VJP", step(1e-2, 2.0001, 3), step(1e-3, 2.000001, 3), false},
		{"jump", step(1e-2, 109.2, 0), step(1e-3, 1092, 0), true},
		{"jump and a slope", step(1e-2, 2+54.6, 2), step(1e-3, 2+546, 2), true},
	} {
		if got := jumped(tc.a, tc.b, tolF32); got != tc.want {
			t.Errorf("%s: jumped = %v, want %v", tc.name, got, tc.want)
		}
	}
}
