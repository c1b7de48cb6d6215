package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/auditor"
	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

func auditCommand() *cli.Command {
	return &cli.Command{
		Name:      "audit",
		Usage:     "measure DeepFool margins and PGD robustness of checkpoints",
		UsageText: progName + " audit CHECKPOINT_DIR_OR_FILE... --out DIR (--data NAME | --images X.npy --labels Y.npy) [flags]",
		Description: wrapText("For every checkpoint (directories are scanned for *.onnx, ordered by the epoch in " +
			"the model's metadata or file name) and every image, DeepFool finds the nearest point of another " +
			"class; its distance is the image's margin (an upper bound of the distance to the decision " +
			"boundary). Results go to DIR/margins.csv, DIR/summary.json, DIR/transitions.csv and " +
			"DIR/confidence.csv (each image's clean max-softmax). Each " +
			"checkpoint is committed when it finishes: rerunning the same command skips finished " +
			"checkpoints, and different settings are refused. Input range and normalisation come from the " +
			"flags, else from the checkpoint's metadata (input_range, normalization), else [0,1]; " +
			"normalisation is applied inside the graph, so margins are in pixel units.\n\n" +
			"--images takes a float or integer array whose shape after N is the models' input shape; integer " +
			"images are used as stored (for uint8 ones give --range 0,255 if the model takes that range, or " +
			"scale them). --labels takes an integer array, or whole numbers. Images of --data are NCHW and are " +
			"transposed for NHWC models: a model is NHWC when its first op transposes its input [N, H, W, C] " +
			"to NCHW (x.permute(0, 3, 1, 2), as TensorFlow exports do), or with --layout nhwc. The layout also " +
			"says which axis --mean and --std apply to."),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Usage: "write the audit to `DIR`"},
			&cli.StringFlag{Name: "data", Usage: "data set: mnist, fashion-mnist or cifar10"},
			&cli.StringFlag{Name: "data-dir", Usage: "read the data set from `DIR`"},
			&cli.StringFlag{Name: "images", Usage: "images as a .npy `FILE` [N, ...model input] (instead of --data; split \"test\")"},
			&cli.StringFlag{Name: "labels", Usage: "labels as an integer .npy `FILE` [N]"},
			&cli.StringFlag{Name: "split", Usage: "splits to audit", Value: "test"},
			&cli.IntFlag{Name: "n", Usage: "images per split", Value: 1000},
			&cli.StringFlag{Name: "sample", Usage: "which images: first or random", Value: "first"},
			&cli.Int64Flag{Name: "seed", Usage: "seed of the random subset and of the attacks' noise", Value: 1},
			&cli.StringFlag{Name: "range", Usage: "pixel range `LO,HI` (default: metadata, else 0,1)"},
			&cli.StringFlag{Name: "mean", Usage: "per-channel normalisation mean, e.g. `0.4914,0.4822,0.4465`"},
			&cli.StringFlag{Name: "std", Usage: "per-channel normalisation standard deviation"},
			&cli.StringFlag{Name: "layout", Usage: "the models' channel axis: auto (detect), nchw or nhwc", Value: "auto"},
			&cli.StringFlag{Name: "output", Usage: "the graph output `NAME` holding the class scores (default: the first)"},
			&cli.StringFlag{Name: "norm", Usage: "margin norms: l2, linf or both", Value: "l2,linf"},
			&cli.IntFlag{Name: "candidates", Usage: "DeepFool candidate classes: the top `K` (0: all)"},
			&cli.IntFlag{Name: "max-iter", Usage: "DeepFool iterations per attempt", Value: 50},
			&cli.Float64Flag{Name: "overshoot", Usage: "DeepFool overshoot of the cumulative perturbation", Value: 0.02},
			&cli.IntFlag{Name: "retries", Usage: "restarts from a noisy image when DeepFool fails", Value: 10},
			&cli.BoolFlag{Name: "refine", Usage: "tighten each margin by bisection (margin_refined column)"},
			&cli.StringFlag{Name: "pgd-eps", Usage: "PGD radii for robust accuracy, e.g. `0.05,0.1` (none by default)"},
			&cli.StringFlag{Name: "pgd-norm", Usage: "PGD norms", Value: "linf"},
			&cli.IntFlag{Name: "pgd-steps", Usage: "PGD steps", Value: 20},
			&cli.Float64Flag{Name: "pgd-step", Usage: "PGD step size (default 2.5·ε/steps)"},
			&cli.IntFlag{Name: "batch", Usage: "images attacked together", Value: 64},
			shardFlag(),
			waitFlag(),
		},
		Action: runAudit,
	}
}

func runAudit(c *cli.Context) error {
	if !c.Args().Present() {
		return usagef("audit", "no checkpoints given")
	}
	if c.String("out") == "" {
		return usagef("audit", "--out is required")
	}
	s, err := auditSettings(c)
	if err != nil {
		return err
	}
	sp, err := shardSpec(c)
	if err != nil {
		return err
	}
	lock, err := lockOutput(c, "audit", c.String("out"))
	if err != nil {
		return err
	}
	defer lock.Close()
	data, dtype, err := loadAuditData(c, &s)
	if err != nil {
		return err
	}
	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	p := &auditProgress{bar: bar}
	cfg := auditor.Config{Checkpoints: c.Args().Slice(), Out: c.String("out"), Settings: s, Data: data,
		Threads: c.Int("threads"), BatchSize: c.Int("batch"), Shard: sp}
	sum, err := auditor.Run(c.Context, cfg, p)
	err = shardUsage(err)
	if sum != nil && len(sum.Checkpoints) > 0 { // else every checkpoint failed
		printAuditSummary(c, sum)
	}
	return withHint(err, auditHint(err, dtype, c.IsSet("range")))
}

// auditSettings turns the flags into the settings that determine results.
func auditSettings(c *cli.Context) (auditor.Settings, error) {
	s := auditor.Settings{N: c.Int("n"), Sample: c.String("sample"), Seed: c.Int64("seed"),
		Overshoot: c.Float64("overshoot"), MaxIter: c.Int("max-iter"), Candidates: c.Int("candidates"),
		Retries: c.Int("retries"), Refine: c.Bool("refine")}
	switch {
	case c.String("data") != "" && c.String("images") != "":
		return s, usagef("audit", "give --data or --images, not both")
	case c.String("data") != "":
		s.Data = c.String("data")
	case c.String("images") != "" && c.String("labels") != "":
		s.Data = c.String("images") + "," + c.String("labels")
	default:
		return s, usagef("audit", "give --data NAME, or --images X.npy with --labels Y.npy")
	}
	if s.N <= 0 {
		return s, usagef("audit", "--n %d: want a positive number of images", s.N)
	}
	if s.Sample != "first" && s.Sample != "random" {
		return s, usagef("audit", "--sample %q: want first or random", s.Sample)
	}
	for _, f := range strings.Split(c.String("split"), ",") {
		sp, err := auditor.ParseSplit(strings.TrimSpace(f))
		if err != nil {
			return s, usagef("audit", "--split: %v", err)
		}
		s.Splits = append(s.Splits, sp)
	}
	var err error
	if s.Norms, err = parseNorms(c.String("norm")); err != nil {
		return s, usagef("audit", "--norm: %v", err)
	}
	if r := c.String("range"); r != "" {
		v, err := parseFloatList(r)
		if err != nil || len(v) != 2 || !(v[0] < v[1]) {
			return s, usagef("audit", "--range %q: want LO,HI with LO < HI", r)
		}
		s.Range = [2]float64{v[0], v[1]}
	}
	if s.Mean, err = parseFloatList(c.String("mean")); err != nil {
		return s, usagef("audit", "--mean: %v", err)
	}
	if s.Std, err = parseFloatList(c.String("std")); err != nil {
		return s, usagef("audit", "--std: %v", err)
	}
	if (s.Mean == nil) != (s.Std == nil) {
		return s, usagef("audit", "give --mean and --std together")
	}
	layout, err := attack.ParseLayout(c.String("layout"))
	if err != nil {
		return s, usagef("audit", "--layout: %v", err)
	}
	if layout != attack.LayoutAuto {
		s.Layout = strings.ToLower(layout.String())
	}
	s.Output = c.String("output")
	if eps := c.String("pgd-eps"); eps != "" {
		if s.PGD.Eps, err = parseFloatList(eps); err != nil {
			return s, usagef("audit", "--pgd-eps: %v", err)
		}
		if s.PGD.Norms, err = parseNorms(c.String("pgd-norm")); err != nil {
			return s, usagef("audit", "--pgd-norm: %v", err)
		}
		s.PGD.Steps, s.PGD.StepSize, s.PGD.RandomStart = c.Int("pgd-steps"), c.Float64("pgd-step"), true
	}
	return s, nil
}

func parseNorms(s string) ([]auditor.Norm, error) {
	var out []auditor.Norm
	for _, f := range strings.Split(s, ",") {
		n, err := auditor.ParseNorm(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

// parseFloatList parses "a,b,c" ("" gives nil).
func parseFloatList(s string) ([]float64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []float64
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%q is not a number", f)
		}
		out = append(out, v)
	}
	return out, nil
}

// loadAuditData reads the images of every split and picks the subset. It
// also returns the element type of an --images array ("" for --data).
func loadAuditData(c *cli.Context, s *auditor.Settings) (map[auditor.Split]*auditor.Images, string, error) {
	if c.String("data") != "" {
		data, err := loadDataset(c.String("data"), c.String("data-dir"), s)
		return data, "", err
	}
	if len(s.Splits) != 1 || s.Splits[0] != auditor.Test {
		return nil, "", usagef("audit", "--images gives one split; use --split test")
	}
	d, x, err := readNpyDataset(c.String("images"), c.String("labels"))
	if err != nil {
		return nil, "", err
	}
	im := pickImages(d, s.N, s.Sample == "random", uint64(s.Seed))
	im.Name = c.String("images")
	for _, n := range x.Shape[1:] {
		im.Shape = append(im.Shape, int64(n))
	}
	return map[auditor.Split]*auditor.Images{auditor.Test: im}, x.DType, nil
}

// loadDataset reads the splits of s from a named data set and picks the
// subset.
func loadDataset(name, dir string, s *auditor.Settings) (map[auditor.Split]*auditor.Images, error) {
	data := map[auditor.Split]*auditor.Images{}
	for _, split := range s.Splits {
		d, err := dataset.Load(name, string(split), dir)
		if err != nil {
			return nil, err
		}
		im := pickImages(d, s.N, s.Sample == "random", uint64(s.Seed))
		im.Shape, im.Layout, im.Name = []int64{int64(d.C), int64(d.H), int64(d.W)}, attack.NCHW, name+" "+string(split)
		data[split] = im
	}
	return data, nil
}

// readNpyDataset reads images [N, ...] (any float or integer type, values
// as stored) and integer labels [N], and returns them as a data set, with
// the images' array for its shape and element type.
func readNpyDataset(images, labels string) (*dataset.Dataset, *npy.Array, error) {
	x, err := npy.ReadFile(images)
	if err != nil {
		return nil, nil, err
	}
	y, err := npy.ReadIntsFile(labels)
	if err != nil {
		return nil, nil, err
	}
	if len(x.Shape) < 2 || x.Shape[0] == 0 {
		return nil, nil, fmt.Errorf("%s: images must be [N, ...] with N > 0, got shape %s", images, formatInts(x.Shape))
	}
	if len(y.Shape) != 1 || y.Shape[0] != x.Shape[0] {
		return nil, nil, fmt.Errorf("%s: labels must be [%d] to match %s, got shape %s", labels, x.Shape[0], images, formatInts(y.Shape))
	}
	for i, v := range y.Data {
		if v < 0 {
			return nil, nil, fmt.Errorf("%s: label [%d] is %d, not a class index", labels, i, v)
		}
	}
	return &dataset.Dataset{Name: filepath.Base(images), Split: "test", Images: x.Data, N: x.Shape[0], Labels: y.Data}, x, nil
}

// pickImages takes the first n images of d, or n drawn at random.
func pickImages(d *dataset.Dataset, n int, random bool, seed uint64) *auditor.Images {
	n = min(n, d.N)
	idx := make([]int, d.N)
	for i := range idx {
		idx[i] = i
	}
	if random {
		rand.New(rand.NewPCG(seed, 0x5eed)).Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		idx = idx[:n]
		slices.Sort(idx)
	}
	idx = idx[:n]
	size := len(d.Images) / d.N
	im := &auditor.Images{Index: idx, Labels: make([]int, n), X: make([]float32, 0, n*size)}
	for k, i := range idx {
		im.Labels[k] = d.Labels[i]
		im.X = append(im.X, d.Images[i*size:(i+1)*size]...)
	}
	return im
}

// auditProgress renders auditor.Run's reports.
type auditProgress struct {
	bar *progressBar
	// model says how the checkpoint being audited is run, for the line
	// that reports it audited.
	model string
}

// Checkpoint counts attacks, not images: an image is attacked once per
// DeepFool norm and once per PGD radius.
func (p *auditProgress) Checkpoint(c auditor.Checkpoint, i, n, work int) {
	p.model = ""
	p.bar.begin(fmt.Sprintf("[%d/%d] %s", i+1, n, c.Name), work, "attacks")
}

// Model keeps which scores the attacks use and how a fixed batch is run.
func (p *auditProgress) Model(_ auditor.Checkpoint, m auditor.ModelInfo) {
	p.model = "scores: " + m.Scores
	if m.Batch != "" {
		p.model += "; " + m.Batch
	}
}

func (p *auditProgress) Done(n int) { p.bar.add(n, "") }

func (p *auditProgress) Finished(c auditor.Checkpoint, skipped bool, err error, elapsed time.Duration) {
	switch {
	case skipped:
		p.bar.println(false, "%s: already audited, skipped", c.Name)
	case err != nil:
		p.bar.println(true, "%s: %s: failed: %v", progName, c.Name, err)
	default:
		p.bar.println(false, "%s: epoch %d audited in %s (%s)", c.Name, c.Epoch, elapsed.Round(time.Millisecond), p.model)
	}
}

// printAuditSummary prints the mean margins per epoch, split and norm.
func printAuditSummary(c *cli.Context, sum *auditor.Summary) {
	t := newTable()
	t.row("epoch\tsplit\tnorm\tn\taccuracy\tmean margin\tse\tcorrect\tincorrect\tfailures")
	acc := map[string]auditor.Float{}
	for _, ck := range sum.Checkpoints {
		for _, a := range ck.Accuracy {
			acc[fmt.Sprint(ck.Epoch, a.Split)] = a.Accuracy
		}
	}
	type key struct {
		epoch int
		split auditor.Split
		norm  auditor.Norm
	}
	byGroup := map[key]map[auditor.GroupKind]auditor.Group{}
	var keys []key
	for _, g := range sum.Groups {
		k := key{g.Epoch, g.Split, g.Norm}
		if byGroup[k] == nil {
			byGroup[k] = map[auditor.GroupKind]auditor.Group{}
			keys = append(keys, k)
		}
		byGroup[k][g.Group] = g
	}
	for _, k := range keys {
		g := byGroup[k]
		all := g[auditor.All]
		t.row("%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%d", k.epoch, k.split, k.norm, all.Images, fmtFloat(acc[fmt.Sprint(k.epoch, k.split)]),
			fmtFloat(all.Margin.Mean), fmtFloat(all.Margin.SE), fmtFloat(g[auditor.Correct].Margin.Mean), fmtFloat(g[auditor.Incorrect].Margin.Mean), all.Failures)
	}
	if err := t.writeTo(c.App.Writer); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "%s: %v\n", progName, err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %s\n", filepath.Join(c.String("out"), auditor.MarginsFile))
}

func fmtFloat(f auditor.Float) string {
	if math.IsNaN(float64(f)) {
		return "-"
	}
	return strconv.FormatFloat(float64(f), 'g', 4, 64)
}
