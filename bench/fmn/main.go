// Command fmn measures what the FMN refinement of auditor/attack costs and
// gains over DeepFool alone on a trained checkpoint: for the first N test
// images of its data set, the wall time of DeepFool (with its perturbations
// kept) and of DeepFool followed by the refinement at each step budget
// (best of -repeat runs), and the mean margins. It writes the images, the
// clean predictions and the margins as .npy files for fmn_torch.py, which
// runs FMN and DDN in PyTorch on the same model and images (see README.md).
//
//	go run ./bench/fmn -model CKPT.onnx -data mnist -n 300 -out bench/fmn/out/NAME
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/internal/npy"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fmn:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fmn", flag.ContinueOnError)
	model := fs.String("model", "", "the checkpoint `FILE` (.onnx)")
	data := fs.String("data", "mnist", "its data set")
	n := fs.Int("n", 300, "how many test images, from the first")
	threads := fs.Int("threads", 1, "onnxruntime threads")
	steps := fs.String("steps", "10,25,50,100", "the refinement's step budgets, comma-separated")
	norms := fs.String("norms", "L2,Linf", "the norms")
	repeat := fs.Int("repeat", 3, "timed runs per case (the best is reported)")
	alpha := fs.Float64("alpha", 0, "FMN's first step size α₀ (0: the default)")
	gamma := fs.Float64("gamma", 0, "FMN's first γ (0: the default)")
	out := fs.String("out", "", "write NAME.x.npy and the margins under this `PREFIX` (none if empty)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		return errors.New("-model is required")
	}
	var budgets []int
	for _, s := range strings.Split(*steps, ",") {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			return fmt.Errorf("-steps: %q is not a positive integer", s)
		}
		budgets = append(budgets, v)
	}
	m, err := onnxgrad.Load(*model)
	if err != nil {
		return err
	}
	ds, err := dataset.Load(*data, "test", "")
	if err != nil {
		return err
	}
	*n = min(*n, ds.N)
	x := ds.Images[:*n*ds.ImageSize()]
	c, err := attack.NewClassifier(m, attack.Options{Name: filepath.Base(*model), Threads: *threads})
	if err != nil {
		return err
	}
	defer c.Close()
	pred, err := c.Predict(x, *n)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		shape := []int{*n}
		for _, s := range c.InputShape() {
			shape = append(shape, int(s))
		}
		if err := npy.WriteFile(*out+".x.npy", &npy.Array{Shape: shape, Data: x}); err != nil {
			return err
		}
		if err := writeVector(*out+".pred.npy", pred, func(p int) float64 { return float64(p) }); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s, %d %s test images, %d thread(s), best of %d runs\n", *model, *n, *data, *threads, *repeat)
	fmt.Fprintln(stdout, "norm  budget  wall_s  x_deepfool   cpu_s  x_deepfool  mean_margin  vs_deepfool  failed  censored")
	for _, name := range strings.Split(*norms, ",") {
		norm := attack.L2
		if strings.EqualFold(name, "linf") {
			norm = attack.LInf
		}
		opt := attack.FMNOptions{Norm: norm, Step: *alpha, GammaInit: *gamma}
		if err := measure(stdout, c, x, opt, budgets, *repeat, *out); err != nil {
			return err
		}
	}
	return nil
}

// measure times DeepFool and DeepFool + FMN (fo, at each budget) on x and
// prints one line each.
func measure(w io.Writer, c *attack.Classifier, x []float32, fo attack.FMNOptions, budgets []int, repeat int, out string) error {
	ctx := context.Background()
	norm := fo.Norm
	dfo := attack.DefaultDeepFoolOptions(norm)
	dfo.KeepPerturbation = true
	var start []attack.DeepFoolResult
	dfTime, dfCPU, err := timed(repeat, func() (err error) {
		start, err = attack.DeepFool(ctx, c, x, nil, dfo)
		return err
	})
	if err != nil {
		return err
	}
	failed := 0
	for _, r := range start {
		if !r.Success {
			failed++
		}
	}
	dfMean := meanOf(start, func(r attack.DeepFoolResult) (float64, bool) { return r.Margin, r.Success })
	fmt.Fprintf(w, "%-5v %6s  %6.3f  %10.2f  %6.3f  %10.2f  %11.5g  %11s  %6d  %8s\n", norm, "-", dfTime, 1.0, dfCPU, 1.0, dfMean, "", failed, "")
	if out != "" {
		if err := writeVector(fmt.Sprintf("%s.%v.deepfool.npy", out, norm), start, func(r attack.DeepFoolResult) float64 { return r.Margin }); err != nil {
			return err
		}
	}
	for _, steps := range budgets {
		opt := fo
		opt.Steps = steps
		f, err := attack.NewFMN(c, opt)
		if err != nil {
			return err
		}
		var res []attack.RefineResult
		wall, cpu, err := timed(repeat, func() error {
			s, err := attack.DeepFool(ctx, c, x, nil, dfo)
			if err != nil {
				return err
			}
			res, err = f.Refine(ctx, x, s)
			return err
		})
		if err != nil {
			return err
		}
		censored := 0
		for _, r := range res {
			if r.Censored {
				censored++
			}
		}
		mean := meanOf(res, func(r attack.RefineResult) (float64, bool) { return r.Margin, !r.Censored })
		// The gain is over the images both flipped.
		var gain float64
		var both int
		for i, r := range res {
			if start[i].Success && !r.Censored {
				gain += r.Margin / start[i].Margin
				both++
			}
		}
		fmt.Fprintf(w, "%-5v %6d  %6.3f  %10.2f  %6.3f  %10.2f  %11.5g  %10.2f%%  %6s  %8d\n", norm, steps, wall, wall/dfTime, cpu, cpu/dfCPU, mean, 100*(gain/float64(both)-1), "", censored)
		if out != "" {
			if err := writeVector(fmt.Sprintf("%s.%v.fmn%d.npy", out, norm, steps), res, func(r attack.RefineResult) float64 { return r.Margin }); err != nil {
				return err
			}
		}
	}
	return nil
}

// timed runs f repeat times and returns the least wall time and the least
// CPU time (user and system, of the whole process: onnxruntime's threads
// included) of a run, in seconds. On a machine shared with other jobs the
// CPU time is the steadier measure of the work done.
func timed(repeat int, f func() error) (wall, cpu float64, err error) {
	wall, cpu = math.Inf(1), math.Inf(1)
	for range repeat {
		c0 := cpuSeconds()
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, 0, err
		}
		wall = min(wall, time.Since(t0).Seconds())
		cpu = min(cpu, cpuSeconds()-c0)
	}
	return wall, cpu, nil
}

// cpuSeconds returns the CPU time the process has used so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// meanOf returns the mean of the values that v reports as present.
func meanOf[T any](rs []T, v func(T) (float64, bool)) float64 {
	var sum float64
	var k int
	for _, r := range rs {
		if x, ok := v(r); ok {
			sum += x
			k++
		}
	}
	return sum / float64(k)
}

// writeVector writes one float32 value per element of rs to path.
func writeVector[T any](path string, rs []T, v func(T) float64) error {
	a := &npy.Array{Shape: []int{len(rs)}, Data: make([]float32, len(rs))}
	for i, r := range rs {
		a.Data[i] = float32(v(r))
	}
	return npy.WriteFile(path, a)
}
