// Command measure compares certified lower bounds of margins (auditor/bound,
// CROWN with adaptive slopes) with DeepFool's upper bounds on test images,
// and the ONNX graphs' radii with the float64 reference (crownref). See
// ../README.md for the figures.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
	"github.com/marginaudit/marginaudit/bench/bound/crownref"
	"github.com/marginaudit/marginaudit/onnxgrad"
	"github.com/marginaudit/marginaudit/trainer/dataset"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}

func run(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("measure", flag.ContinueOnError)
	model := fs.String("model", "", "checkpoint `FILE` (.onnx)")
	data := fs.String("data", "mnist", "data set of the test images")
	n := fs.Int("n", 100, "test images")
	ref := fs.Int("ref", 10, "of them, images also certified by the float64 reference")
	steps := fs.Int("steps", bound.DefaultSteps, "bisection steps")
	threads := fs.Int("threads", 2, "onnxruntime threads")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := onnxgrad.Load(*model)
	if err != nil {
		return err
	}
	ds, err := dataset.Load(*data, "test", "")
	if err != nil {
		return err
	}
	ds = ds.Head(*n)
	c, err := attack.NewClassifier(m, attack.Options{Name: *model, Threads: *threads})
	if err != nil {
		return err
	}
	defer c.Close()
	ct, err := bound.New(c, bound.Options{Steps: *steps, Threads: *threads})
	if err != nil {
		return err
	}
	defer ct.Close()
	ctx := context.Background()
	d := ds.ImageSize()
	fmt.Fprintf(w, "model %s, %d %s test images, %d bisection steps\n", *model, ds.N, *data, *steps)
	for _, norm := range []attack.Norm{attack.L2, attack.LInf} {
		t0 := time.Now()
		opt := attack.DefaultDeepFoolOptions(norm)
		opt.KeepPerturbation = true
		df, err := attack.DeepFool(ctx, c, ds.Images, ds.Labels, opt)
		if err != nil {
			return err
		}
		fmn, err := attack.NewFMN(c, attack.FMNOptions{Norm: norm})
		if err != nil {
			return err
		}
		refined, err := fmn.Refine(ctx, ds.Images, df)
		if err != nil {
			return err
		}
		tdf := time.Since(t0)
		pred, upper := make([]int, ds.N), make([]float64, ds.N)
		for i, r := range df {
			pred[i], upper[i] = r.Pred, min(r.Margin, refined[i].Margin)
			if refined[i].Censored {
				upper[i] = refined[i].CensoredAt
			}
		}
		t0 = time.Now()
		lower, err := ct.Certify(ctx, ds.Images, pred, norm, upper)
		if err != nil {
			return err
		}
		tb := time.Since(t0)
		var ratio, sumL, sumU float64
		var k, violations int
		for i, r := range df {
			if lower[i] > upper[i] {
				violations++
			}
			if !r.Correct() || !r.Success {
				continue
			}
			k++
			ratio += lower[i] / upper[i]
			sumL += lower[i]
			sumU += upper[i]
		}
		fmt.Fprintf(w, "%-4v correct %d/%d: mean lower %.4g, mean DeepFool (refined) %.4g, mean lower/upper %.3f; lower > upper on %d images; DeepFool %.1fs, certify %.1fs\n",
			norm, k, ds.N, sumL/float64(k), sumU/float64(k), ratio/float64(k), violations, tdf.Seconds(), tb.Seconds())
		var refRatio, graphRatio, worst float64
		var kr int
		t0 = time.Now()
		for i := range min(*ref, ds.N) {
			if !df[i].Correct() || !df[i].Success {
				continue
			}
			x := make([]float64, d)
			for j, v := range ds.Image(i) {
				x[j] = float64(v)
			}
			r := crownref.Certify(ct.Net(), crownref.Ball{X: x, Norm: norm, Lo: 0, Hi: 1}, pred[i], upper[i], *steps)
			kr++
			refRatio += r / upper[i]
			graphRatio += lower[i] / upper[i]
			worst = max(worst, math.Abs(lower[i]-r)/max(r, 1e-12))
		}
		if kr > 0 {
			fmt.Fprintf(w, "     reference on %d images: mean lower/upper %.3f (graphs %.3f), largest relative difference %.2g; %.1fs\n",
				kr, refRatio/float64(kr), graphRatio/float64(kr), worst, time.Since(t0).Seconds())
		}
	}
	return nil
}
