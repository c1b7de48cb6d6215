// Package crownref is a plain float64 reference of CROWN with adaptive
// lower slopes (Zhang et al. 2018), the oracle that auditor/bound's ONNX
// graphs are tested and measured against. It interprets a [bound.Net]
// directly, one image and one specification row at a time, with CROWN
// itself (not interval arithmetic) for every intermediate bound; it is slow
// and meant for tests and benchmarks only.
package crownref

import (
	"math"

	"github.com/marginaudit/marginaudit/auditor/attack"
	"github.com/marginaudit/marginaudit/auditor/bound"
)

// Ball is the perturbation set: the norm ball of radius Eps around X,
// intersected with the box [Lo, Hi].
type Ball struct {
	X      []float64
	Eps    float64
	Norm   attack.Norm
	Lo, Hi float64
}

// Lower returns, for every class j ≠ pred in increasing order, a lower
// bound of z_pred(x) − z_j(x) over the ball.
func Lower(net *bound.Net, ball Ball, pred int) []float64 {
	r := &run{net: net, ball: ball, l: map[int][]float64{}, u: map[int][]float64{}}
	for _, layer := range net.Layers {
		if layer.Kind == bound.Relu || layer.Kind == bound.MaxPool {
			r.intermediate(layer.In[0])
		}
	}
	var spec [][]float64
	for j := range net.Classes {
		if j != pred {
			row := make([]float64, net.Classes)
			row[pred], row[j] = 1, -1
			spec = append(spec, row)
		}
	}
	return r.backward(net.Output, spec)
}

type run struct {
	net  *bound.Net
	ball Ball
	l, u map[int][]float64 // bounds of the inputs of Relu and MaxPool layers
}

// intermediate computes the bounds of tensor t with CROWN: 2n rows, e_i
// for the lower bounds and −e_i for the upper ones.
func (r *run) intermediate(t int) {
	if _, done := r.l[t]; done {
		return
	}
	n := r.net.Size(t)
	rows := make([][]float64, 2*n)
	for i := range n {
		rows[i] = make([]float64, n)
		rows[i][i] = 1
		rows[n+i] = make([]float64, n)
		rows[n+i][i] = -1
	}
	b := r.backward(t, rows)
	l, u := make([]float64, n), make([]float64, n)
	for i := range n {
		l[i], u[i] = b[i], -b[n+i]
	}
	r.l[t], r.u[t] = l, u
}

// backward returns a lower bound of rows[s]·tensor_t for every row s.
func (r *run) backward(t int, rows [][]float64) []float64 {
	out := make([]float64, len(rows))
	for s, row := range rows {
		out[s] = r.backwardRow(t, row)
	}
	return out
}

func (r *run) backwardRow(t int, row []float64) float64 {
	var c float64
	net := r.net
	visit := func(L *bound.Layer, g []float64) [][]float64 {
		in := L.In[0]
		x := make([]float64, net.Size(in))
		switch L.Kind {
		case bound.Dense:
			nin := int(L.WShape[1])
			for o, v := range g {
				if v == 0 {
					continue
				}
				c += v * L.B[o]
				w := L.W[o*nin : (o+1)*nin]
				for j := range x {
					x[j] += v * w[j]
				}
			}
		case bound.Scale:
			for j, v := range g {
				x[j] = v * L.Mul[j]
				c += v * L.Shift[j]
			}
		case bound.Reshape:
			copy(x, g)
		case bound.Sum:
			copy(x, g)
			return [][]float64{x, append([]float64(nil), g...)}
		case bound.Relu:
			l, u := r.l[in], r.u[in]
			for j, v := range g {
				a, s, b := reluLines(l[j], u[j])
				if v >= 0 {
					x[j] = v * a
				} else {
					x[j] = v * s
					c += v * b
				}
			}
		case bound.Conv:
			c += r.convT(L, in, g, x)
		case bound.MaxPool, bound.AvgPool:
			c += r.poolT(L, in, g, x)
		}
		return [][]float64{x}
	}
	sum := func(a, b []float64) []float64 {
		for k := range a {
			a[k] += b[k]
		}
		return a
	}
	image := bound.Backward(net, t, append([]float64(nil), row...), visit, sum)
	return c + r.concretise(image)
}

// reluLines returns CROWN's relaxation of relu on [l, u]: the lower line
// a·x, the upper line s·x + b.
func reluLines(l, u float64) (a, s, b float64) {
	switch {
	case l >= 0:
		return 1, 1, 0
	case u <= 0:
		return 0, 0, 0
	}
	s = u / (u - l)
	if u >= -l {
		a = 1
	}
	return a, s, -s * l
}

// convT adds Λ (g, on the conv's output) times the kernel into x, the
// transposed convolution, and returns Λ·bias.
func (r *run) convT(L *bound.Layer, in int, g, x []float64) float64 {
	is, os := r.net.Shapes[in], r.net.Shapes[L.Out]
	M, cpg, kh, kw := int(L.WShape[0]), int(L.WShape[1]), int(L.WShape[2]), int(L.WShape[3])
	H, W, Ho, Wo := int(is[1]), int(is[2]), int(os[1]), int(os[2])
	mpg := M / int(L.Group)
	var c float64
	for m := range M {
		grp := m / mpg
		for oh := range Ho {
			for ow := range Wo {
				v := g[(m*Ho+oh)*Wo+ow]
				if v == 0 {
					continue
				}
				c += v * L.B[m]
				for ci := range cpg {
					cin := grp*cpg + ci
					for a := range kh {
						ih := oh*int(L.Strides[0]) - int(L.Pads[0]) + a*int(L.Dilate[0])
						if ih < 0 || ih >= H {
							continue
						}
						for b := range kw {
							iw := ow*int(L.Strides[1]) - int(L.Pads[1]) + b*int(L.Dilate[1])
							if iw < 0 || iw >= W {
								continue
							}
							x[(cin*H+ih)*W+iw] += v * L.W[((m*cpg+ci)*kh+a)*kw+b]
						}
					}
				}
			}
		}
	}
	return c
}

// poolT propagates Λ through a pooling layer: AvgPool exactly, MaxPool by
// the relaxation max ≥ x_j (j the window's input of largest lower bound)
// and max ≤ the window's largest upper bound, or max = x_j where windows
// tile the input and l_j ≥ u_i for every other input i (as the graphs do:
// they test this only for tiling windows). It returns the constant.
func (r *run) poolT(L *bound.Layer, in int, g, x []float64) float64 {
	is, os := r.net.Shapes[in], r.net.Shapes[L.Out]
	C, H, W, Ho, Wo := int(is[0]), int(is[1]), int(is[2]), int(os[1]), int(os[2])
	kh, kw := int(L.Kernel[0]), int(L.Kernel[1])
	var c float64
	for ch := range C {
		for oh := range Ho {
			for ow := range Wo {
				v := g[(ch*Ho+oh)*Wo+ow]
				var cells []int
				for a := range kh {
					ih := oh*int(L.Strides[0]) - int(L.Pads[0]) + a
					for b := range kw {
						iw := ow*int(L.Strides[1]) - int(L.Pads[1]) + b
						if ih >= 0 && ih < H && iw >= 0 && iw < W {
							cells = append(cells, (ch*H+ih)*W+iw)
						}
					}
				}
				if L.Kind == bound.AvgPool {
					cnt := float64(len(cells))
					if L.CountPad {
						cnt = float64(kh * kw)
					}
					for _, j := range cells {
						x[j] += v / cnt
					}
					continue
				}
				l, u := r.l[in], r.u[in]
				best, top := cells[0], math.Inf(-1)
				for _, j := range cells {
					if l[j] > l[best] {
						best = j
					}
					top = max(top, u[j])
				}
				rival := math.Inf(-1)
				for _, j := range cells {
					if j != best {
						rival = max(rival, u[j])
					}
				}
				if v >= 0 || (L.Tiles() && l[best] >= rival) {
					x[best] += v
				} else {
					c += v * top
				}
			}
		}
	}
	return c
}

// concretise returns the minimum of a·x over the ball (a lower bound of it
// for L2, where the box is handled by taking the better of the ball's and
// the box's bounds, each sound on its own).
func (r *run) concretise(a []float64) float64 {
	b := r.ball
	var box, dot, sq float64
	for j, v := range a {
		xl, xu := max(b.Lo, b.X[j]-b.Eps), min(b.Hi, b.X[j]+b.Eps)
		if v >= 0 {
			box += v * xl
		} else {
			box += v * xu
		}
		dot += v * b.X[j]
		sq += v * v
	}
	if b.Norm == attack.LInf {
		return box
	}
	return max(box, dot-b.Eps*math.Sqrt(sq))
}

// Certify returns the largest radius found by steps halvings of
// [0, upper] at which Lower proves pred over the ball (ball.Eps is
// ignored), the float64 twin of auditor/bound's Certifier.Certify without
// its safety factor.
func Certify(net *bound.Net, ball Ball, pred int, upper float64, steps int) float64 {
	lo, hi := 0.0, upper
	for range steps {
		ball.Eps = (lo + hi) / 2
		proven := true
		for _, v := range Lower(net, ball, pred) {
			proven = proven && v > 0
		}
		if proven {
			lo = ball.Eps
		} else {
			hi = ball.Eps
		}
	}
	return lo
}
