package report

import (
	"fmt"
	"slices"
	"strings"

	"gonum.org/v1/plot"

	"github.com/marginaudit/marginaudit/auditor"
)

// How the report speaks of an audit's checkpoints: as epochs of a training
// run, or, when they had no epochs (auditor.FromPosition), as separate
// models named by their files, numbered in the order given.

// at names the checkpoint of epoch e: "epoch 3", or "model resnet.onnx".
func (a *audit) at(e int) string {
	if a.member {
		return "model " + a.Label
	}
	if a.separate {
		return "model " + a.names[e]
	}
	return fmt.Sprintf("epoch %d", e)
}

// unit is what the audit's checkpoints are: "epoch" or "model".
func (a *audit) unit() string {
	if a.separate {
		return "model"
	}
	return "epoch"
}

// listed names the epochs es: "epochs 1, 5", or "models a.onnx, b.onnx".
func (a *audit) listed(es []int) string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = fmt.Sprint(e)
		if a.member {
			return "model " + a.Label
		}
		if a.separate {
			s[i] = a.names[e]
		}
	}
	return a.unit() + "s " + strings.Join(s, ", ")
}

// checkpointAxis sets the x axis of p to the epochs, or to the models'
// names for separate models.
func checkpointAxis(p *plot.Plot, a *audit, epochs []int) {
	epochAxis(p, epochs)
	if !a.separate || len(epochs) == 0 {
		return
	}
	ticks := make([]plot.Tick, len(epochs))
	for i, e := range epochs {
		ticks[i] = plot.Tick{Value: float64(e), Label: a.names[e]}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
}

// pixelRange returns the pixel range the attacks used, when one range
// applies to every checkpoint: the settings', or the one recorded for each
// checkpoint (settings.json stores [0, 0] for "from each checkpoint's
// metadata").
func (a *audit) pixelRange() ([2]float64, bool) {
	if r := a.settings.Range; r != [2]float64{} {
		return r, true
	}
	ranges := a.recorded(func(c auditor.CheckpointSummary) string { return fmt.Sprint(c.InputRange) })
	if len(ranges) != 1 || len(a.models) != len(a.epochs) {
		return [2]float64{}, false
	}
	r := a.models[a.epochs[0]].InputRange
	return [2]float64{r[0], r[1]}, true
}

// inputText describes the pixel range and normalisation the attacks used,
// as given to the audit or taken from each checkpoint's metadata.
func (a *audit) inputText() string {
	s := a.settings
	var rng, norm string
	if r := s.Range; r != [2]float64{} {
		rng = fmt.Sprintf("pixel range [%s, %s]", fmtG(r[0]), fmtG(r[1]))
	} else {
		ranges := a.recorded(func(c auditor.CheckpointSummary) string {
			return fmt.Sprintf("[%s, %s]", fmtG(c.InputRange[0]), fmtG(c.InputRange[1]))
		})
		rng = "pixel range " + strings.Join(ranges, " or ") + " (from each checkpoint's metadata, or the default [0, 1])"
		if len(ranges) == 0 {
			rng = "pixel range from each checkpoint's metadata (not recorded by this audit)"
		}
	}
	if len(s.Mean) > 0 {
		norm = fmt.Sprintf("normalisation mean %s, std %s", fmtList(s.Mean), fmtList(s.Std))
	} else {
		norms := a.recorded(func(c auditor.CheckpointSummary) string { return c.Normalization })
		norms = slices.DeleteFunc(norms, func(n string) bool { return n == "" })
		switch {
		case len(norms) == 0:
			norm = "normalisation from each checkpoint's metadata, if any (not recorded by this audit)"
		case len(norms) == 1 && norms[0] == "none":
			norm = "no normalisation"
		default:
			norm = "normalisation " + strings.Join(norms, " or ")
		}
	}
	return rng + "; " + norm
}

// recorded returns the distinct values of what over the checkpoints with a
// recorded input range, in epoch order.
func (a *audit) recorded(what func(auditor.CheckpointSummary) string) []string {
	var out []string
	for _, e := range a.epochs {
		c, ok := a.models[e]
		if !ok || len(c.InputRange) != 2 {
			continue
		}
		if v := what(c); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func fmtList(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmtG(x)
	}
	return strings.Join(s, ", ")
}
