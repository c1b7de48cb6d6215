package main

import (
	"cmp"
	"fmt"
	"io"
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
	"github.com/marginaudit/marginaudit/internal/convention"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

func auditCommand() *cli.Command {
	df, pgd := attack.DefaultDeepFoolParams(), attack.DefaultPGDParams()
	return &cli.Command{
		Name:      "audit",
		Usage:     "measure DeepFool margins and PGD robustness of checkpoints",
		UsageText: progName + " audit CHECKPOINT_DIR_OR_FILE... --out DIR (--data NAME | --images X.npy --labels Y.npy) [flags]",
		Description: wrapText("For every checkpoint (directories are scanned for *.onnx, ordered by the epoch in " +
			"the model's metadata or file name) and every image, DeepFool finds the nearest point of another " +
			"class; its distance is the image's margin (an upper bound of the distance to the decision " +
			"boundary). Results go to DIR/margins.csv, DIR/summary.json, DIR/transitions.csv and " +
			"DIR/confidence.csv (each image's clean max-softmax) and DIR/robust.csv (each image's PGD outcome); " +
			"with --save-adversarial, DIR/adversarial/CHECKPOINT/SPLIT-NORM.npy holds each image's perturbation " +
			"x_adv − x (float32 [N, ...image], zeros where DeepFool failed) and SPLIT-NORM-index.npy its image " +
			"index and adversarial class (int64 [N, 2], class −1 where it failed), rows in margins.csv's order; " +
			"with --refine, SPLIT-NORM-refined.npy and SPLIT-NORM-refined-index.npy hold the same for the " +
			"refined points, whose norms are margin_refined (zeros and −1 where censored). Each " +
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
			&cli.StringFlag{Name: "sample", Usage: "which images: first or random", Value: auditor.SampleFirst},
			&cli.Int64Flag{Name: "seed", Usage: "seed of the random subset and of the attacks' noise", Value: 1},
			&cli.StringFlag{Name: "range", Usage: "pixel range `LO,HI` (default: metadata, else 0,1)"},
			&cli.StringFlag{Name: "mean", Usage: "per-channel normalisation mean, e.g. `0.4914,0.4822,0.4465`"},
			&cli.StringFlag{Name: "std", Usage: "per-channel normalisation standard deviation"},
			&cli.StringFlag{Name: "layout", Usage: "the models' channel axis: auto (detect), nchw or nhwc", Value: "auto"},
			&cli.StringFlag{Name: "output", Usage: "the graph output `NAME` holding the class scores (default: the first)"},
			&cli.StringFlag{Name: "norm", Usage: "margin norms: l2, linf or both", Value: "l2,linf"},
			&cli.IntFlag{Name: "candidates", Usage: "DeepFool candidate classes: the top `K` (0: all)", Value: df.Candidates},
			&cli.IntFlag{Name: "max-iter", Usage: "DeepFool iterations per attempt", Value: df.MaxIter},
			&cli.Float64Flag{Name: "overshoot", Usage: "DeepFool overshoot of the cumulative perturbation", Value: df.Overshoot},
			&cli.IntFlag{Name: "retries", Usage: "restarts from a noisy image when DeepFool fails", Value: df.Retries},
			refineFlag(), refineStepsFlag(), certifyFlag(), certifyStepsFlag(),
			&cli.StringFlag{Name: "pgd-eps", Usage: "PGD radii for robust accuracy, in pixel units, e.g. `0.05,0.1` (none by default)"},
			&cli.StringFlag{Name: "pgd-norm", Usage: "PGD norms (with --pgd-eps)", Value: "linf"},
			&cli.IntFlag{Name: "pgd-steps", Usage: "PGD steps (with --pgd-eps)", Value: pgd.Steps},
			&cli.Float64Flag{Name: "pgd-step", Usage: "PGD step size in pixel units, the same for every radius (with --pgd-eps)",
				Value: pgd.Step, DefaultText: fmt.Sprintf("%g·ε/steps", attack.DefaultPGDStepScale)},
			&cli.IntFlag{Name: "batch", Usage: "images attacked together", Value: attack.DefaultDeepFoolBatch},
			saveAdversarialFlag(),
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
	if err := refuseZero(c, "audit", "batch"); err != nil {
		return err
	}
	sp, err := shardSpec(c)
	if err != nil {
		return err
	}
	cfg := auditor.Config{Checkpoints: c.Args().Slice(), Out: c.String("out"), Settings: s,
		Threads: c.Int("threads"), BatchSize: c.Int("batch"), SaveAdversarial: c.Bool("save-adversarial"), Shard: sp}
	if err := cfg.Validate(); err != nil {
		return auditFlags.usage("audit", err)
	}
	lock, err := lockOutput(c, "audit", c.String("out"))
	if err != nil {
		return err
	}
	defer lock.Close()
	bar := newProgressBar(c.App.ErrWriter, c.Bool("quiet"))
	data, dtype, err := loadAuditData(c, &s, bar)
	if err != nil {
		return err
	}
	cfg.Data = data
	p := &auditProgress{bar: bar}
	sum, err := runAuditor(c, cfg, p)
	err = shardUsage(err)
	if sum != nil && len(sum.Checkpoints) > 0 { // else nothing was audited
		if perr := printAuditSummary(c.App.Writer, sum); err == nil {
			err = perr
		}
	}
	if err != nil {
		return withHint(err, auditHint(err, dtype, c.IsSet("range")))
	}
	fmt.Fprintf(c.App.Writer, "wrote %s\n", filepath.Join(c.String("out"), auditor.MarginsFile))
	return nil
}

// auditFlags names the flags of audit that set each setting.
var auditFlags = flagNames{
	"data": "data", "splits": "split", "n": "n", "sample": "sample", "range": "range", "mean": "mean", "std": "std",
	"layout": "layout", "norms": "norm", "overshoot": "overshoot", "max_iter": "max-iter", "candidates": "candidates",
	"retries": "retries", "fmn_steps": "refine-steps", "certify_steps": "certify-steps", "pgd.eps": "pgd-eps", "pgd.norms": "pgd-norm", "pgd.steps": "pgd-steps",
	"pgd.step_size": "pgd-step", "batch_size": "batch", "threads": "threads",
}

// auditSettings turns the flags into the settings that determine results,
// refusing what cannot be parsed and combinations that make no sense;
// auditor.Config.Validate checks the values.
func auditSettings(c *cli.Context) (auditor.Settings, error) {
	s := auditor.Settings{N: c.Int("n"), Sample: c.String("sample"), Seed: c.Int64("seed"),
		DeepFoolParams: attack.DeepFoolParams{Overshoot: c.Float64("overshoot"), MaxIter: c.Int("max-iter"),
			Candidates: c.Int("candidates"), Retries: c.Int("retries")}}
	var err error
	if s.RefineParams, err = refineParams(c, "audit"); err != nil {
		return s, err
	}
	if s.CertifySettings, err = certifySettings(c, "audit"); err != nil {
		return s, err
	}
	switch {
	case c.String("data") != "" && c.String("images") != "":
		return s, usagef("audit", "give --data or --images, not both")
	case c.String("data") != "":
		name, err := checkDataName("audit", c.String("data"))
		if err != nil {
			return s, err
		}
		s.Data = name
	case c.String("images") != "" && c.String("labels") != "":
		if err := needs(c, "audit", "--data", "data-dir"); err != nil {
			return s, err
		}
		s.Data = c.String("images") + "," + c.String("labels")
	default:
		return s, usagef("audit", "give --data NAME, or --images X.npy with --labels Y.npy")
	}
	for _, f := range strings.Split(c.String("split"), ",") {
		s.Splits = append(s.Splits, auditor.Split(strings.TrimSpace(f)))
	}
	if c.String("images") != "" && (len(s.Splits) != 1 || s.Splits[0] != auditor.Test) {
		return s, usagef("audit", "--split %s: --images gives one split; want test", c.String("split"))
	}
	if s.Norms, err = parseNorms(c, "norm"); err != nil {
		return s, err
	}
	if r := c.String("range"); r != "" {
		if s.Range, err = convention.ParseRange(r); err != nil {
			return s, usagef("audit", "--range %v", err)
		}
	}
	if s.Mean, err = convention.ParseFloats(c.String("mean")); err != nil {
		return s, usagef("audit", "--mean: %v", err)
	}
	if s.Std, err = convention.ParseFloats(c.String("std")); err != nil {
		return s, usagef("audit", "--std: %v", err)
	}
	layout, err := attack.ParseLayout(c.String("layout"))
	if err != nil {
		return s, usagef("audit", "--layout: %v", err)
	}
	if layout != attack.LayoutAuto {
		s.Layout = strings.ToLower(layout.String())
	}
	s.Output = c.String("output")
	eps := c.String("pgd-eps")
	if eps == "" {
		return s, needs(c, "audit", "--pgd-eps", "pgd-norm", "pgd-steps", "pgd-step")
	}
	if s.PGD.Eps, err = convention.ParseFloats(eps); err != nil {
		return s, usagef("audit", "--pgd-eps: %v", err)
	}
	if s.PGD.Norms, err = parseNorms(c, "pgd-norm"); err != nil {
		return s, err
	}
	s.PGD.PGDParams = attack.PGDParams{Steps: c.Int("pgd-steps"), Step: c.Float64("pgd-step"), RandomStart: true}
	return s, nil
}

// refineFlag and refineStepsFlag are the flags of the FMN refinement, on
// audit and study.
func refineFlag() cli.Flag {
	return &cli.BoolFlag{Name: "refine", Usage: "tighten each margin by FMN from DeepFool's point, or from a PGD search where DeepFool fails (margin_refined and censored columns)"}
}

func refineStepsFlag() cli.Flag {
	return &cli.IntFlag{Name: "refine-steps", Usage: "FMN steps per image (with --refine)", Value: attack.DefaultFMNSteps}
}

func saveAdversarialFlag() cli.Flag {
	return &cli.BoolFlag{Name: "save-adversarial", Usage: "also write the perturbations DeepFool finds to DIR/adversarial/CHECKPOINT/SPLIT-NORM.npy, and with --refine the refined ones to SPLIT-NORM-refined.npy (not added to checkpoints already finished); the report's gallery draws them"}
}

// certifyFlag and certifyStepsFlag ask audit and study for certified lower
// bounds.
func certifyFlag() cli.Flag {
	return &cli.BoolFlag{Name: "certify", Usage: "certify a lower bound of each margin by linear bound propagation (margin_lower column; 0 for misclassified images); a model with an op it does not support fails with the op named"}
}

func certifyStepsFlag() cli.Flag {
	return &cli.IntFlag{Name: "certify-steps", Usage: "bisection steps on each image's certified radius, 1 to 60 (with --certify); each halves the interval it lies in", Value: auditor.DefaultCertifySettings().Steps}
}

// certifySettings reads the certified bounds' flags of cmd;
// --certify-steps needs --certify. Settings.Validate checks the steps.
func certifySettings(c *cli.Context, cmd string) (auditor.CertifySettings, error) {
	if !c.Bool("certify") {
		return auditor.CertifySettings{}, needs(c, cmd, "--certify", "certify-steps")
	}
	return auditor.CertifySettings{Certify: true, Steps: c.Int("certify-steps")}, nil
}

// refineParams reads the refinement's flags of cmd; --refine-steps needs
// --refine. RefineParams.Validate checks the steps.
func refineParams(c *cli.Context, cmd string) (attack.RefineParams, error) {
	if !c.Bool("refine") {
		return attack.RefineParams{}, needs(c, cmd, "--refine", "refine-steps")
	}
	return attack.RefineParams{Refine: true, Steps: c.Int("refine-steps")}, nil
}

// parseNorms parses audit's flag holding a list of norm names, such as
// "l2,linf".
func parseNorms(c *cli.Context, flag string) ([]auditor.Norm, error) {
	var out []auditor.Norm
	for _, f := range strings.Split(c.String(flag), ",") {
		n, err := attack.ParseNorm(strings.TrimSpace(f))
		if err != nil {
			return nil, usagef("audit", "--%s %q: want l2, linf or both", flag, c.String(flag))
		}
		out = append(out, n)
	}
	return out, nil
}

// loadAuditData reads the images of every split and picks the subset,
// warning on bar when there are fewer images than asked for. It also
// returns the element type of an --images array ("" for --data).
func loadAuditData(c *cli.Context, s *auditor.Settings, bar *progressBar) (map[auditor.Split]*auditor.Images, string, error) {
	if c.String("data") != "" {
		data, err := loadDataset(c.String("data"), c.String("data-dir"), s, bar)
		return data, "", err
	}
	d, x, err := readNpyDataset(c.String("images"), c.String("labels"))
	if err != nil {
		return nil, "", err
	}
	im := pickImages(d, s.N, s.Sample == auditor.SampleRandom, uint64(s.Seed), c.String("images"), bar)
	for _, n := range x.Shape[1:] {
		im.Shape = append(im.Shape, int64(n))
	}
	return map[auditor.Split]*auditor.Images{auditor.Test: im}, x.DType, nil
}

// loadDataset reads the splits of s from a named data set and picks the
// subset, warning on bar when a split has fewer images than asked for.
func loadDataset(name, dir string, s *auditor.Settings, bar *progressBar) (map[auditor.Split]*auditor.Images, error) {
	data := map[auditor.Split]*auditor.Images{}
	for _, split := range s.Splits {
		d, err := dataset.Load(name, string(split), dir)
		if err != nil {
			return nil, err
		}
		im := pickImages(d, s.N, s.Sample == auditor.SampleRandom, uint64(s.Seed), d.Name+" "+string(split), bar)
		im.Shape, im.Layout, im.Dataset = []int64{int64(d.C), int64(d.H), int64(d.W)}, attack.NCHW, d.Name
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
	switch {
	case len(x.Shape) < 2:
		return nil, nil, fmt.Errorf("%s: images must be [N, ...] with N > 0, got shape %s", images, formatInts(x.Shape))
	case x.Shape[0] == 0:
		return nil, nil, fmt.Errorf("%s holds no images (shape %s)", images, formatInts(x.Shape))
	case slices.Contains(x.Shape[1:], 0):
		return nil, nil, fmt.Errorf("%s: images of shape %s have no pixels: axis %d has size 0", images, formatInts(x.Shape), 1+slices.Index(x.Shape[1:], 0))
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

// pickImages takes the first n images of d (which holds some), or n drawn
// at random, named name; when d has fewer, it takes all and warns on bar.
func pickImages(d *dataset.Dataset, n int, random bool, seed uint64, name string, bar *progressBar) *auditor.Images {
	if n > d.N {
		bar.warn("-n %d: %s holds %d images: auditing all %d", n, name, d.N, d.N)
		n = d.N
	}
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
	im := &auditor.Images{Index: idx, Labels: make([]int, n), X: make([]float32, 0, n*size), Name: name}
	for k, i := range idx {
		im.Labels[k] = d.Labels[i]
		im.X = append(im.X, d.Images[i*size:(i+1)*size]...)
	}
	return im
}

// auditProgress renders auditor.Run's reports. A checkpoint that fails is
// reported failed here and its error is printed once, with the others, by
// run at the end.
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

// Stage is not shown: the bar counts a checkpoint's attacks together.
func (p *auditProgress) Stage(auditor.Checkpoint, auditor.Split, string, int) {}

func (p *auditProgress) Finished(c auditor.Checkpoint, skipped bool, err error, elapsed time.Duration) {
	switch {
	case skipped:
		p.bar.println(false, "%s: already audited, skipped", c.Name)
	case err != nil:
		p.bar.println(false, "%s: failed (the error follows at the end)", c.Name)
	case c.From == auditor.FromPosition: // a model, not an epoch of a run
		p.bar.println(false, "%s: audited in %s (%s)", c.Name, elapsed.Round(time.Millisecond), p.model)
	default:
		p.bar.println(false, "%s: epoch %d audited in %s (%s)", c.Name, c.Epoch, elapsed.Round(time.Millisecond), p.model)
	}
}

func (p *auditProgress) Warn(_ auditor.Checkpoint, msg string) { p.bar.warn("%s", msg) }

// printAuditSummary prints to w the clean accuracy, the PGD robust
// accuracy at each norm and radius, and the mean margins per checkpoint,
// split and norm. Checkpoints without epochs (separate models) are named
// rather than numbered.
func printAuditSummary(w io.Writer, sum *auditor.Summary) error {
	type ckSplit struct {
		epoch int
		split auditor.Split
	}
	type pgdKey struct {
		norm auditor.Norm
		eps  float64
	}
	acc := map[ckSplit]auditor.Float{}
	names := map[int]string{}
	models := len(sum.Checkpoints) > 0
	for _, ck := range sum.Checkpoints {
		names[ck.Epoch] = ck.Checkpoint
		models = models && ck.EpochFrom == auditor.FromPosition
		for _, a := range ck.Accuracy {
			acc[ckSplit{ck.Epoch, a.Split}] = a.Accuracy
		}
	}
	var pgdCols []pgdKey
	robust := map[ckSplit]map[pgdKey]auditor.Float{}
	for _, r := range sum.PGD {
		k, col := ckSplit{r.Epoch, r.Split}, pgdKey{r.Norm, r.Eps}
		if !slices.Contains(pgdCols, col) {
			pgdCols = append(pgdCols, col)
		}
		if robust[k] == nil {
			robust[k] = map[pgdKey]auditor.Float{}
		}
		robust[k][col] = r.RobustAccuracy
	}
	slices.SortFunc(pgdCols, func(a, b pgdKey) int {
		return cmp.Or(strings.Compare(string(a.norm), string(b.norm)), cmp.Compare(a.eps, b.eps))
	})

	head := "epoch"
	if models {
		head = "checkpoint"
	}
	head += "\tsplit\tnorm\tn\taccuracy"
	for _, col := range pgdCols {
		head += fmt.Sprintf("\tPGD %s ε=%s", col.norm, strconv.FormatFloat(col.eps, 'g', 4, 64))
	}
	t := newTable()
	t.row("%s\tmean margin\tse\tcorrect\tincorrect\tfailures", head)
	type key struct {
		ckSplit
		norm auditor.Norm
	}
	byGroup := map[key]map[auditor.GroupKind]auditor.Group{}
	var keys []key
	for _, g := range sum.Groups {
		k := key{ckSplit{g.Epoch, g.Split}, g.Norm}
		if byGroup[k] == nil {
			byGroup[k] = map[auditor.GroupKind]auditor.Group{}
			keys = append(keys, k)
		}
		byGroup[k][g.Group] = g
	}
	for _, k := range keys {
		g := byGroup[k]
		all := g[auditor.All]
		row := strconv.Itoa(k.epoch)
		if models {
			row = names[k.epoch]
		}
		row += fmt.Sprintf("\t%s\t%s\t%d\t%s", k.split, k.norm, all.Images, fmtFloat(acc[k.ckSplit]))
		for _, col := range pgdCols {
			v, ok := robust[k.ckSplit][col]
			if !ok {
				v = auditor.Float(math.NaN())
			}
			row += "\t" + fmtFloat(v)
		}
		t.row("%s\t%s\t%s\t%s\t%s\t%d", row, fmtFloat(all.Margin.Mean), fmtFloat(all.Margin.SE),
			fmtFloat(g[auditor.Correct].Margin.Mean), fmtFloat(g[auditor.Incorrect].Margin.Mean), all.Failures)
	}
	return t.writeTo(w)
}

func fmtFloat(f auditor.Float) string {
	if math.IsNaN(float64(f)) {
		return "-"
	}
	return strconv.FormatFloat(float64(f), 'g', 4, 64)
}
