// Package ref evaluates the trainer's models in float64 in plain Go, as a
// reference for tests: the ONNX graphs that onnxruntime runs must compute
// the same logits, and their gradients must match finite differences of
// the same loss.
package ref

import (
	"math"

	"github.com/marginaudit/marginaudit/trainer/model"
)

// Weights returns m's weights converted to float64, in the order of m.Params.
func Weights(m *model.Model) [][]float64 {
	w := make([][]float64, len(m.Params))
	for i, p := range m.Params {
		w[i] = make([]float64, len(p.Data))
		for j, v := range p.Data {
			w[i][j] = float64(v)
		}
	}
	return w
}

// Logits returns the [n, K] logits of m's architecture with weights w
// (in the order of m.Params) for the n images in x (NCHW).
func Logits(m *model.Model, w [][]float64, x []float64, n int) []float64 {
	a := x
	c, h, wd := m.C, m.H, m.W
	next := 0
	if m.Arch.Kind == model.CNN {
		for _, out := range m.Arch.Channels {
			a = conv(a, w[next], w[next+1], n, c, h, wd, out, m.Arch.Kernel)
			relu(a)
			a, h, wd = maxPool2(a, n, out, h, wd)
			c = out
			next += 2
		}
	}
	in := len(a) / n
	for _, out := range m.Arch.Hidden {
		a = dense(a, w[next], w[next+1], n, in, out)
		relu(a)
		in = out
		next += 2
	}
	return dense(a, w[next], w[next+1], n, in, m.Classes)
}

// Loss returns the mean over the n images of the cross-entropy between the
// softmax of logits and target (both [n, K]), as model.LossGraph defines it.
func Loss(logits, target []float64, n int) float64 {
	k := len(logits) / n
	var sum float64
	for i := range n {
		row := logits[i*k : (i+1)*k]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = max(mx, v)
		}
		var z float64
		for _, v := range row {
			z += math.Exp(v - mx)
		}
		lse := mx + math.Log(z)
		for j, v := range row {
			sum -= target[i*k+j] * (v - lse)
		}
	}
	return sum / float64(n)
}

// conv is a stride-1 convolution with "same" padding k/2.
func conv(x, wt, b []float64, n, c, h, w, out, k int) []float64 {
	y := make([]float64, n*out*h*w)
	p := k / 2
	for i := range n {
		for o := range out {
			for r := range h {
				for s := range w {
					acc := b[o]
					for ci := range c {
						for kr := range k {
							rr := r + kr - p
							if rr < 0 || rr >= h {
								continue
							}
							for ks := range k {
								ss := s + ks - p
								if ss < 0 || ss >= w {
									continue
								}
								acc += x[((i*c+ci)*h+rr)*w+ss] * wt[((o*c+ci)*k+kr)*k+ks]
							}
						}
					}
					y[((i*out+o)*h+r)*w+s] = acc
				}
			}
		}
	}
	return y
}

// maxPool2 is a 2×2 max pooling with stride 2 (trailing odd rows and columns
// dropped, as ONNX's floor mode does).
func maxPool2(x []float64, n, c, h, w int) ([]float64, int, int) {
	oh, ow := h/2, w/2
	y := make([]float64, n*c*oh*ow)
	for i := range n * c {
		for r := range oh {
			for s := range ow {
				v := math.Inf(-1)
				for dr := range 2 {
					for ds := range 2 {
						v = max(v, x[(i*h+2*r+dr)*w+2*s+ds])
					}
				}
				y[(i*oh+r)*ow+s] = v
			}
		}
	}
	return y, oh, ow
}

// dense is y = x·Wᵀ + b with W stored [out, in].
func dense(x, wt, b []float64, n, in, out int) []float64 {
	y := make([]float64, n*out)
	for i := range n {
		for o := range out {
			acc := b[o]
			for j := range in {
				acc += x[i*in+j] * wt[o*in+j]
			}
			y[i*out+o] = acc
		}
	}
	return y
}

func relu(x []float64) {
	for i, v := range x {
		if v < 0 {
			x[i] = 0
		}
	}
}
