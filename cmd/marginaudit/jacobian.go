package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/english"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/internal/ort"
	"github.com/marginaudit/marginaudit/onnxgrad"
)

func jacobianCommand() *cli.Command {
	return &cli.Command{
		Name:  "jacobian",
		Usage: "compute the per-sample Jacobian of a model on a .npy batch",
		UsageText: progName + " jacobian MODEL.onnx --input X.npy --out J.npy [--classes K] [--batch 64] [--input-shape C,H,W]\n" +
			"   [--threads N]",
		Description: wrapText("Reads X.npy, a float32 (or float64, or integer) array [N, ...] of N inputs of the model, and writes J.npy, " +
			"the float32 array [N, K, ...] with J[n, k, ...] = ∂output[n, k]/∂X[n, ...] for the model's first output " +
			"(class scores [N, K]) with respect to its only input. The Jacobian graph is built in memory with " +
			"onnxgrad and run by onnxruntime, --batch samples per run, in one session.\n\n" +
			"With --classes K only the K highest-scoring classes of each sample are differentiated: J is [N, K, ...] " +
			"with rows best first, and their class indices are written next to it, to J.classes.npy " +
			"(the name of J without .npy, plus .classes.npy) as a float32 array [N, K] of whole numbers " +
			"(exact: float32 holds integers up to 2^24). " +
			"Inputs whose shape does not fit the model, non-finite inputs and non-finite Jacobians are errors. " +
			"When the model declares symbolic sizes after the batch dimension, they are taken from X.npy " +
			"unless --input-shape gives them. A model exported with a fixed batch size is rewritten to take " +
			"any number of samples per run, as audit does, or else fed its fixed batch per run (stderr says " +
			"which). Progress goes to stderr (none with -q)."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "input", Usage: "read the inputs [N, ...] from `X.npy`"},
			&cli.StringFlag{Name: "out", Usage: "write the Jacobian to `J.npy`"},
			&cli.IntFlag{Name: "classes", Usage: "differentiate only the top `K` classes by score (0: all)"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "feed onnxruntime `B` samples per run"},
			&cli.StringFlag{Name: "input-shape", Usage: "fix the input's sizes after the batch dimension to `C,H,W`"},
		},
		Action: runJacobian,
	}
}

func runJacobian(c *cli.Context) error {
	const cmd = "jacobian"
	if c.NArg() != 1 {
		return usagef(cmd, "want one MODEL.onnx argument, got %d", c.NArg())
	}
	file, in, out := c.Args().First(), c.String("input"), c.String("out")
	switch {
	case in == "":
		return usagef(cmd, "missing --input X.npy")
	case out == "":
		return usagef(cmd, "missing --out J.npy")
	case c.Int("batch") < 1:
		return usagef(cmd, "--batch %d: want at least 1", c.Int("batch"))
	case c.Int("classes") < 0:
		return usagef(cmd, "--classes %d: want a positive number of classes", c.Int("classes"))
	}
	inputShape, err := parseInputShape(cmd, c.String("input-shape"))
	if err != nil {
		return err
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a folder", out, filepath.Dir(out))
	}

	x, err := npy.ReadFile(in)
	if err != nil {
		return err
	}
	jm, err := buildJacobian(file, x.Shape, jacobianOptions{Classes: c.Int("classes"), InputShape: inputShape, Threads: c.Int("threads")})
	if err != nil {
		return err
	}
	if fb := jm.batch; fb.Size > 0 && !c.Bool("quiet") {
		msg := fb.String()
		if !fb.Rewritten {
			msg += " (" + fb.Reason + ")"
		}
		fmt.Fprintf(c.App.ErrWriter, "%s: %s: %s\n", cmd, file, msg)
	}
	if err := jm.checkInput(in, x); err != nil {
		return err
	}
	if err := jm.open(c.Int("threads")); err != nil {
		return err
	}
	defer jm.Close()
	p := newProgress(c.App.ErrWriter, cmd, c.Bool("quiet"))
	res, err := jm.compute(c.Context, x, c.Int("batch"), p.update)
	if err != nil {
		return err
	}
	p.done(fmt.Sprintf("%d images in %v (%.0f images/s in onnxruntime)", x.Shape[0], res.elapsed.Round(time.Millisecond), float64(x.Shape[0])/res.elapsed.Seconds()))

	w := c.App.Writer
	if res.classes == nil {
		if err := npy.WriteFile(out, res.j); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s: float32 %s, [n, k, ...] = ∂%s[n, k]/∂%s[n, ...]\n", out, formatInts(res.j.Shape), jm.res.Output, jm.input.Name)
		return nil
	}
	// The classes first: a J.npy is never left without its classes.
	cp := classesPath(out)
	ca := &npy.Array{Shape: []int{x.Shape[0], jm.rows}, Data: make([]float32, len(res.classes))}
	for i, k := range res.classes {
		ca.Data[i] = float32(k)
	}
	if err := npy.WriteFile(cp, ca); err != nil {
		return err
	}
	if err := npy.WriteFile(out, res.j); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s: float32 %s, [n, l, ...] = ∂%s[n, c]/∂%s[n, ...] for the class c = classes[n, l]\n", out, formatInts(res.j.Shape), jm.res.Output, jm.input.Name)
	fmt.Fprintf(w, "wrote %s: float32 %s, classes[n, l], the top %d classes by score, best first\n", cp, formatInts(ca.Shape), jm.rows)
	return nil
}

// classesPath is where jacobian --classes writes the class indices for the
// Jacobian written to out: J.npy → J.classes.npy.
func classesPath(out string) string {
	return strings.TrimSuffix(out, ".npy") + ".classes.npy"
}

type jacobianOptions struct {
	Classes    int     // 0: all classes
	InputShape []int64 // sizes after the batch dimension, or nil
	Threads    int     // onnxruntime threads of the fixed-batch check (0: its default)
}

// jacobianModel is a classifier's Jacobian graph, built by onnxgrad, and
// once opened, loaded in onnxruntime.
type jacobianModel struct {
	file  string
	res   *onnxgrad.Result
	sess  *ort.Session // nil until open
	input tensorDesc   // as the Jacobian model declares it
	k     int          // number of class scores
	rows  int          // rows of the Jacobian per sample: k or the Classes option
	// batch says how a model whose batch is fixed is run: rewritten to
	// a symbolic batch, or fed its fixed batch per run (see fixedBatch).
	batch attack.FixedBatch
	// Positions in the session's outputs; iClasses is -1 without Classes.
	iScores, iJac, iClasses int
}

// buildJacobian builds the Jacobian model of the ONNX classifier in file.
// xShape, when not nil, is the shape of the inputs to come; it supplies sizes
// that the model leaves symbolic. The model needs [jacobianModel.open]
// before it computes.
func buildJacobian(file string, xShape []int, opt jacobianOptions) (*jacobianModel, error) {
	m, err := onnxgrad.Load(file)
	if err != nil {
		return nil, err
	}
	ins, _ := graphIO(m)
	if len(ins) != 1 {
		return nil, fmt.Errorf("%s: the model has %s; jacobian needs exactly one", file, english.Plural(len(ins), "input"))
	}
	if opt.InputShape == nil && len(xShape) > 1 && len(ins[0].Dims) == len(xShape) {
		for _, d := range ins[0].Dims[1:] {
			if _, err := strconv.Atoi(d); err != nil {
				opt.InputShape = make([]int64, len(xShape)-1)
				for i, s := range xShape[1:] {
					opt.InputShape[i] = int64(s)
				}
				break
			}
		}
	}
	// As audit does: a fixed batch made symbolic where the graph allows.
	m, fb, err := attack.SymbolicBatch(m, attack.Options{Name: filepath.Base(file), InputShape: opt.InputShape, Threads: opt.Threads})
	if err != nil {
		return nil, err
	}
	res, err := onnxgrad.Build(m, onnxgrad.Options{Mode: onnxgrad.Jacobian, Classes: opt.Classes, InputShape: opt.InputShape, File: file})
	if err != nil {
		return nil, withHint(err, buildHint(err, m, opt.InputShape != nil))
	}
	jm := &jacobianModel{file: file, res: res, batch: fb, iScores: -1, iJac: -1, iClasses: -1}
	gin, gout := graphIO(res.Model)
	jm.input = gin[0]
	for _, o := range gout {
		switch o.Name {
		case res.Output:
			jm.k, err = staticDim(o, 1)
		case res.Grads[0]:
			jm.rows, err = staticDim(o, 1)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return jm, nil
}

// open loads the model into an onnxruntime session whose runs use threads
// threads (0: onnxruntime's default).
func (jm *jacobianModel) open(threads int) error {
	if err := ort.Init(); err != nil {
		return err // not the model's fault: no file name
	}
	data, err := onnxgrad.Encode(jm.res.Model)
	if err != nil {
		return err
	}
	jm.sess, err = ort.NewSession(data, ort.SessionOptions{Threads: threads})
	if err != nil {
		return fmt.Errorf("%s: %w", jm.file, err)
	}
	for i, o := range jm.sess.Outputs() {
		switch o.Name {
		case jm.res.Output:
			jm.iScores = i
		case jm.res.Grads[0]:
			jm.iJac = i
		case jm.res.Classes:
			jm.iClasses = i
		}
	}
	if jm.iScores < 0 || jm.iJac < 0 || (jm.res.Classes != "" && jm.iClasses < 0) {
		jm.Close()
		return fmt.Errorf("%s: onnxruntime does not list the Jacobian model's outputs %q and %q", jm.file, jm.res.Output, jm.res.Grads[0])
	}
	return nil
}

// staticDim returns dimension i of t, which must be a known size.
func staticDim(t tensorDesc, i int) (int, error) {
	if i >= len(t.Dims) {
		return 0, fmt.Errorf("output %q has shape %s, want rank > %d", t.Name, formatDims(t.Dims), i)
	}
	n, err := strconv.Atoi(t.Dims[i])
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("output %q has shape %s: dimension %d is not a known size", t.Name, formatDims(t.Dims), i)
	}
	return n, nil
}

// Close releases the onnxruntime session, if open.
func (jm *jacobianModel) Close() error { return jm.sess.Close() }

// fixedBatch returns the model's batch size if the model fixes it (its
// batch could not be made symbolic), else 0.
func (jm *jacobianModel) fixedBatch() int {
	if len(jm.input.Dims) == 0 {
		return 0
	}
	n, err := strconv.Atoi(jm.input.Dims[0])
	if err != nil {
		return 0
	}
	return n
}

// checkInput checks that x, read from the file xfile, can be fed to the model.
func (jm *jacobianModel) checkInput(xfile string, x *npy.Array) error {
	want := jm.input.Dims
	mismatch := func(why string) error {
		return fmt.Errorf("%s: input shape %s does not fit the model's input %q %s in %s: %s", xfile, formatInts(x.Shape), jm.input.Name, formatDims(want), jm.file, why)
	}
	if len(x.Shape) != len(want) {
		return mismatch(fmt.Sprintf("rank %d, want %d", len(x.Shape), len(want)))
	}
	for i, d := range want[1:] {
		if n, err := strconv.Atoi(d); err == nil && n != x.Shape[i+1] {
			return mismatch(fmt.Sprintf("dimension %d is %d, want %d", i+1, x.Shape[i+1], n))
		}
	}
	if x.Shape[0] == 0 {
		return fmt.Errorf("%s: no samples (shape %s)", xfile, formatInts(x.Shape))
	}
	if i := firstNonFinite(x.Data); i >= 0 {
		per := len(x.Data) / x.Shape[0]
		return fmt.Errorf("%s: sample %d holds the non-finite value %v", xfile, i/per, x.Data[i])
	}
	return nil
}

// firstNonFinite returns the index of the first NaN or infinity in v, or -1.
func firstNonFinite(v []float32) int {
	for i, f := range v {
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return i
		}
	}
	return -1
}

// jacobianResult is what compute returns for N samples.
type jacobianResult struct {
	j       *npy.Array // [N, rows, ...]
	scores  *npy.Array // the differentiated output, [N, K]
	classes []int64    // [N, rows] when the Classes option is set, else nil
	elapsed time.Duration
}

// compute runs the Jacobian model on x (checked by checkInput), batch samples
// at a time (its fixed batch for a model that fixes it, the last run padded
// with copies of its last sample), calling progress after each run. It
// stops early when ctx is cancelled.
func (jm *jacobianModel) compute(ctx context.Context, x *npy.Array, batch int, progress func(done, total int)) (*jacobianResult, error) {
	n := x.Shape[0]
	per := len(x.Data) / n
	fixed := jm.fixedBatch()
	if fixed > 0 {
		batch = fixed
	}
	res := &jacobianResult{
		j:      &npy.Array{Shape: append([]int{n, jm.rows}, x.Shape[1:]...), Data: make([]float32, n*jm.rows*per)},
		scores: &npy.Array{Shape: []int{n, jm.k}, Data: make([]float32, n*jm.k)},
	}
	if jm.iClasses >= 0 {
		res.classes = make([]int64, n*jm.rows)
	}
	outs := make([]ort.Value, len(jm.sess.Outputs()))
	for s := 0; s < n; s += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e := min(n, s+batch)
		b := e - s
		xs, jac, scores := x.Data[s*per:e*per], res.j.Data[s*jm.rows*per:e*jm.rows*per], res.scores.Data[s*jm.k:e*jm.k]
		var classes []int64
		if res.classes != nil {
			classes = res.classes[s*jm.rows : e*jm.rows]
		}
		padded := b < fixed
		if padded { // run the fixed batch on copies of the last sample, into scratch buffers
			for range fixed - b {
				xs = append(slices.Clip(xs), xs[(b-1)*per:b*per]...)
			}
			jac, scores = make([]float32, fixed*jm.rows*per), make([]float32, fixed*jm.k)
			if classes != nil {
				classes = make([]int64, fixed*jm.rows)
			}
			b = fixed
		}
		shape := []int64{int64(b)}
		for _, d := range x.Shape[1:] {
			shape = append(shape, int64(d))
		}
		in := []ort.Value{ort.NewValue(xs, shape...)}
		clear(outs) // outputs other than ours are allocated by each run
		outs[jm.iJac] = ort.NewValue(jac, slices.Concat([]int64{int64(b), int64(jm.rows)}, shape[1:])...)
		outs[jm.iScores] = ort.NewValue(scores, int64(b), int64(jm.k))
		if classes != nil {
			outs[jm.iClasses] = ort.NewValue(classes, int64(b), int64(jm.rows))
		}
		t0 := time.Now()
		if err := jm.sess.Run(in, outs); err != nil {
			return nil, fmt.Errorf("%s: running the Jacobian model on samples %d to %d: %w", jm.file, s, e-1, err)
		}
		res.elapsed += time.Since(t0)
		if padded { // keep the rows of x's samples
			jac = jac[:copy(res.j.Data[s*jm.rows*per:e*jm.rows*per], jac)]
			scores = scores[:copy(res.scores.Data[s*jm.k:e*jm.k], scores)]
			if classes != nil {
				copy(res.classes[s*jm.rows:e*jm.rows], classes)
			}
		}
		if i := firstNonFinite(jac); i >= 0 {
			return nil, fmt.Errorf("%s: the Jacobian of sample %d has the non-finite value %v (row %d)", jm.file, s+i/(jm.rows*per), jac[i], i/per%jm.rows)
		}
		if i := firstNonFinite(scores); i >= 0 {
			return nil, fmt.Errorf("%s: output %q of sample %d has the non-finite value %v", jm.file, jm.res.Output, s+i/jm.k, scores[i])
		}
		if progress != nil {
			progress(e, n)
		}
	}
	return res, nil
}

// progress prints rate-limited progress lines to stderr, or nothing when
// quiet.
type progress struct {
	w     io.Writer
	name  string
	quiet bool
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, name string, quiet bool) *progress {
	now := time.Now()
	return &progress{w: w, name: name, quiet: quiet, start: now, last: now}
}

// update reports done of total items, at most once a second.
func (p *progress) update(done, total int) {
	if p.quiet || done == total || time.Since(p.last) < time.Second {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "%s: %d/%d images\n", p.name, done, total)
}

// done prints a final line.
func (p *progress) done(msg string) {
	if !p.quiet {
		fmt.Fprintf(p.w, "%s: %s\n", p.name, msg)
	}
}
