package main

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort"
)

// selfcheckTolerance bounds max |J_onnxruntime − J_torch| / max |J_torch| and the
// same for the class scores. The fixtures' Jacobians were computed by
// torch.autograd in float64 and the ONNX graphs reproduce torch's scores to
// about 3e-7 relative (testdata/models/README.md); 1e-4 leaves room for
// float32 accumulation in onnxruntime.
const selfcheckTolerance = 1e-4

// selfcheckMinTime is how long each fixture's Jacobian is timed for.
const selfcheckMinTime = 200 * time.Millisecond

func selfcheckCommand() *cli.Command {
	return &cli.Command{
		Name:      "selfcheck",
		Usage:     "check onnxgrad's Jacobians against PyTorch's on the fixtures",
		UsageText: progName + " selfcheck [--fixtures DIR] [--threads N]",
		Description: wrapText("Checks this installation (onnxgrad and onnxruntime) against PyTorch. For every fixture " +
			"NAME.onnx in testdata/models (or --fixtures DIR) that has inputs NAME.x.npy, selfcheck builds the model's " +
			"Jacobian graph with onnxgrad, runs it with onnxruntime on the inputs, and compares the Jacobian and the " +
			"class scores with PyTorch's (NAME.jac.npy, NAME.logits.npy; the tolerance is 1e-4 of the largest " +
			"magnitude). Then it estimates, for each input, the first-order (linearised) L2 distance to the " +
			"decision boundary from the Jacobian and the scores f (log-probabilities for a model that outputs " +
			"probabilities, as the audit uses): the minimum over classes k other than the " +
			"predicted class p of |f_k − f_p| / ‖∇f_k − ∇f_p‖₂. This is one DeepFool step's estimate, not the " +
			"margin the audit measures.\n\n" +
			"It prints a table: fixture, number of inputs N, classes K, the maximum Jacobian and score errors " +
			"relative to the largest torch value, the mean linearised margin, and the throughput of the Jacobian " +
			"computation in onnxruntime (images/s, timed over repeated runs for at least 200 ms). " +
			"A fixture that fails is reported on stderr and the check goes on; the exit status is then 1. " +
			"Without --fixtures, testdata/models is looked for in the current folder and the folders above it."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "fixtures", Usage: "read the fixtures from `DIR`"},
		},
		Action: runSelfcheck,
	}
}

func runSelfcheck(c *cli.Context) error {
	const cmd = "selfcheck"
	if c.NArg() != 0 {
		return usagef(cmd, "unexpected argument %q", c.Args().First())
	}
	if c.Int("threads") < 0 {
		return usagef(cmd, "--threads %d: want 0 or more", c.Int("threads"))
	}
	dir := c.String("fixtures")
	if dir == "" {
		var err error
		if dir, err = findFixtures(); err != nil {
			return err
		}
	}
	if err := ort.Init(); err != nil {
		return err
	}
	models, err := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if err != nil {
		return err
	}
	slices.Sort(models)
	quiet, stderr := c.Bool("quiet"), c.App.ErrWriter

	t := newTable()
	t.row("fixture\tN\tK\tmax|ΔJ|/max|J|\tmax|Δf|/max|f|\tmean margin (L2, linearised)\timages/s")
	var failures []error
	tried := 0
	for _, model := range models {
		name := strings.TrimSuffix(filepath.Base(model), ".onnx")
		base := strings.TrimSuffix(model, ".onnx")
		if _, err := os.Stat(base + ".x.npy"); err != nil {
			if !quiet {
				fmt.Fprintf(stderr, "selfcheck: skipping %s: no %s.x.npy\n", name, name)
			}
			continue
		}
		tried++
		if !quiet {
			fmt.Fprintf(stderr, "selfcheck: %s\n", name)
		}
		r, err := checkFixture(c, base, c.Int("threads"))
		if cerr := c.Context.Err(); cerr != nil {
			return cerr // interrupted: the other fixtures would fail the same way
		}
		if err != nil {
			// Printed once, with the others, at the end.
			failures = append(failures, fmt.Errorf("selfcheck: %s: %w", name, err))
			t.row("%s\t-\t-\tfailed\t\t\t", name)
			continue
		}
		t.row("%s\t%d\t%d\t%.1e\t%.1e\t%.4g\t%.0f", name, r.n, r.k, r.relJ, r.relF, r.meanMargin, r.imagesPerSec)
	}
	if tried == 0 {
		return fmt.Errorf("no fixtures with inputs (NAME.onnx and NAME.x.npy) in %s", dir)
	}
	if err := t.writeTo(c.App.Writer); err != nil {
		return err
	}
	if len(failures) > 0 {
		return errors.Join(append([]error{fmt.Errorf("selfcheck: %d of %d fixtures failed", len(failures), tried)}, failures...)...)
	}
	return nil
}

// findFixtures looks for testdata/models in the current folder and the
// folders above it.
func findFixtures() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "testdata", "models")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			if rel, err := filepath.Rel(wd, p); err == nil {
				return rel, nil
			}
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no testdata/models folder here or above; run from the repository or pass --fixtures DIR")
		}
	}
}

// fixtureResult is one row of the selfcheck table.
type fixtureResult struct {
	n, k         int
	relJ, relF   float64
	meanMargin   float64
	imagesPerSec float64
}

// checkFixture checks the fixture whose files start with base (a path
// without .onnx).
func checkFixture(c *cli.Context, base string, threads int) (*fixtureResult, error) {
	x, err := npy.ReadFile(base + ".x.npy")
	if err != nil {
		return nil, err
	}
	jm, err := buildJacobian(base+".onnx", x.Shape, jacobianOptions{})
	if err != nil {
		return nil, err
	}
	if err := jm.checkInput(base+".x.npy", x); err != nil {
		return nil, err
	}
	if err := jm.open(threads); err != nil {
		return nil, err
	}
	defer jm.Close()
	n := x.Shape[0]
	res, err := jm.compute(c.Context, x, n, nil)
	if err != nil {
		return nil, err
	}
	r := &fixtureResult{n: n, k: jm.k}
	if r.relJ, err = relError(base+".jac.npy", res.j); err != nil {
		return nil, err
	}
	if r.relF, err = relError(base+".logits.npy", res.scores); err != nil {
		return nil, err
	}
	if r.relJ > selfcheckTolerance || r.relF > selfcheckTolerance {
		return nil, fmt.Errorf("onnxruntime differs from torch: max |ΔJ|/max |J| = %.2g, max |Δf|/max |f| = %.2g, tolerance %g", r.relJ, r.relF, selfcheckTolerance)
	}
	margins := linearMargins(res.scores, res.j)
	for _, m := range margins {
		r.meanMargin += m / float64(len(margins))
	}

	// The first run above warmed the session up; time further runs.
	var elapsed time.Duration
	runs := 0
	for elapsed < selfcheckMinTime {
		again, err := jm.compute(c.Context, x, n, nil)
		if err != nil {
			return nil, err
		}
		elapsed += again.elapsed
		runs++
	}
	r.imagesPerSec = float64(runs*n) / elapsed.Seconds()
	return r, nil
}

// relError returns max |got − want| / max |want| for the array want in file.
func relError(file string, got *npy.Array) (float64, error) {
	want, err := npy.ReadFile(file)
	if err != nil {
		return 0, err
	}
	if !slices.Equal(want.Shape, got.Shape) {
		return 0, fmt.Errorf("%s has shape %s, onnxruntime computed %s", file, formatInts(want.Shape), formatInts(got.Shape))
	}
	var diff, scale float64
	for i, w := range want.Data {
		diff = max(diff, math.Abs(float64(got.Data[i])-float64(w)))
		scale = max(scale, math.Abs(float64(w)))
	}
	if scale == 0 {
		return diff, nil
	}
	return diff / scale, nil
}

// linearMargins returns, for each sample n of the class scores f [N, K] and
// their Jacobian J [N, K, ...], the first-order distance to the decision
// boundary: min over k ≠ p of |f_k − f_p| / ‖J_k − J_p‖₂, where p is the
// predicted class. Rows of probabilities are taken as log-probabilities
// (log p_k, J_k / p_k), as the audit attacks them, so that a model and its
// Softmax give the same estimate. It is +Inf when every gradient
// difference vanishes.
func linearMargins(f, j *npy.Array) []float64 {
	n, k := f.Shape[0], f.Shape[1]
	per := len(j.Data) / (n * k)
	out := make([]float64, n)
	for s := range n {
		scores := f.Data[s*k : (s+1)*k]
		jac := j.Data[s*k*per : (s+1)*k*per]
		if attack.LooksLikeProbabilities(scores, k) && !slices.Contains(scores, 0) {
			logp, jlog := make([]float32, k), make([]float32, len(jac))
			for c, p := range scores {
				logp[c] = float32(math.Log(float64(p)))
				for i, v := range jac[c*per : (c+1)*per] {
					jlog[c*per+i] = v / p
				}
			}
			scores, jac = logp, jlog
		}
		p := 0
		for c, v := range scores {
			if v > scores[p] {
				p = c
			}
		}
		jp := jac[p*per : (p+1)*per]
		best := math.Inf(1)
		for c := range k {
			if c == p {
				continue
			}
			jc := jac[c*per : (c+1)*per]
			var norm2 float64
			for i := range jc {
				d := float64(jc[i]) - float64(jp[i])
				norm2 += d * d
			}
			if norm2 == 0 {
				continue
			}
			best = min(best, math.Abs(float64(scores[c])-float64(scores[p]))/math.Sqrt(norm2))
		}
		out[s] = best
	}
	return out
}
