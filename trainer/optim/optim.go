package optim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/internal/option"
)

// Optimizer names.
const (
	SGD  = "sgd"
	Adam = "adam"
)

// Errors wrapped by this package.
var (
	ErrConfig = errors.New("optim: bad configuration")
	ErrState  = errors.New("optim: state does not fit the optimizer")
)

// Config selects and configures an optimizer. Fields left zero take the
// defaults listed; WithDefaults applies them.
type Config struct {
	// Name is SGD or Adam (default Adam).
	Name string
	// LR is the base learning rate (default 0.01 for SGD, 0.001 for Adam).
	LR float64
	// Momentum is SGD's momentum factor (no default: 0 is plain SGD).
	Momentum float64
	// Beta1, Beta2 and Eps are Adam's constants (defaults 0.9, 0.999 and
	// 1e-8, as in Kingma & Ba 2015 and PyTorch).
	Beta1, Beta2, Eps float64
	// WeightDecay is the L2 penalty coefficient λ: λ·w is added to each
	// gradient before the update, biases included (PyTorch's weight_decay).
	WeightDecay float64
	// Schedule varies the learning rate over the epochs.
	Schedule Schedule
}

// WithDefaults returns c with unset fields set to their defaults.
func (c Config) WithDefaults() Config {
	c.Name = strings.ToLower(c.Name)
	if c.Name == "" {
		c.Name = Adam
	}
	if c.LR == 0 {
		c.LR = 0.01
		if c.Name == Adam {
			c.LR = 0.001
		}
	}
	if c.Name == Adam {
		if c.Beta1 == 0 {
			c.Beta1 = 0.9
		}
		if c.Beta2 == 0 {
			c.Beta2 = 0.999
		}
		if c.Eps == 0 {
			c.Eps = 1e-8
		}
	} else {
		c.Beta1, c.Beta2, c.Eps = 0, 0, 0
	}
	if c.Name != SGD {
		c.Momentum = 0
	}
	c.Schedule = c.Schedule.WithDefaults()
	return c
}

// Validate checks c (after WithDefaults). Its errors wrap ErrConfig;
// errors.As finds an *option.Error naming the field, such as "LR" or
// "Schedule.Kind".
func (c Config) Validate() error {
	switch {
	case c.Name != SGD && c.Name != Adam:
		return bad("Name", strconv.Quote(c.Name), SGD+" or "+Adam)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return bad("LR", c.LR, "a finite learning rate > 0")
	case !(c.Momentum >= 0 && c.Momentum < 1):
		return bad("Momentum", c.Momentum, "a value in [0, 1)")
	case c.Name == Adam && !(c.Beta1 >= 0 && c.Beta1 < 1):
		return bad("Beta1", c.Beta1, "a value in [0, 1)")
	case c.Name == Adam && !(c.Beta2 >= 0 && c.Beta2 < 1):
		return bad("Beta2", c.Beta2, "a value in [0, 1)")
	case c.Name == Adam && (!(c.Eps > 0) || math.IsInf(c.Eps, 0)):
		return bad("Eps", c.Eps, "a finite value > 0")
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return bad("WeightDecay", c.WeightDecay, "a finite value ≥ 0")
	}
	return option.Nest(nil, "Schedule.", c.Schedule.Validate())
}

// bad returns the *option.Error of a field.
func bad(field string, value any, want string) error {
	return &option.Error{Kind: ErrConfig, Field: field, Value: value, Want: want}
}

// An Optimizer updates a fixed list of weight tensors in place. It is not
// safe for concurrent use.
type Optimizer struct {
	cfg   Config
	names []string
	sizes []int
	step  int64
	// slots[s][i] is buffer s of tensor i: SGD's momentum, or Adam's first
	// and second moments.
	slots [][][]float32
}

// slotNames names an optimizer's per-tensor buffers in its State.
func slotNames(name string) []string {
	if name == Adam {
		return []string{"m", "v"}
	}
	return []string{"momentum"}
}

// New returns an optimizer for the tensors named names, of sizes elements
// each, with zero state. cfg's defaults are applied.
func New(cfg Config, names []string, sizes []int) (*Optimizer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(names) != len(sizes) {
		return nil, fmt.Errorf("%w: %d names for %d sizes", ErrConfig, len(names), len(sizes))
	}
	o := &Optimizer{cfg: cfg, names: append([]string(nil), names...), sizes: append([]int(nil), sizes...)}
	for range slotNames(cfg.Name) {
		if cfg.Name == SGD && cfg.Momentum == 0 {
			break
		}
		bufs := make([][]float32, len(sizes))
		for i, n := range sizes {
			bufs[i] = make([]float32, n)
		}
		o.slots = append(o.slots, bufs)
	}
	return o, nil
}

// Config returns the optimizer's configuration, defaults applied.
func (o *Optimizer) Config() Config { return o.cfg }

// Steps returns the number of updates made so far.
func (o *Optimizer) Steps() int64 { return o.step }

// LR returns the learning rate of the given epoch (1-based) of a run of
// epochs epochs, from the configuration's base rate and schedule.
func (o *Optimizer) LR(epoch, epochs int) float64 {
	return o.cfg.Schedule.LR(o.cfg.LR, epoch, epochs)
}

// Step applies one update with learning rate lr: params[i] -= lr · d(grads[i]),
// where d is the optimizer's direction. params and grads must list the
// tensors in the order given to New, with their sizes; it panics otherwise
// (a programmer error). grads is not modified.
func (o *Optimizer) Step(lr float64, params, grads [][]float32) {
	if len(params) != len(o.sizes) || len(grads) != len(o.sizes) {
		panic(fmt.Sprintf("optim: Step with %d params and %d grads, want %d", len(params), len(grads), len(o.sizes)))
	}
	for i, n := range o.sizes {
		if len(params[i]) != n || len(grads[i]) != n {
			panic(fmt.Sprintf("optim: Step: tensor %q has %d values and %d gradients, want %d", o.names[i], len(params[i]), len(grads[i]), n))
		}
	}
	o.step++
	wd := float32(o.cfg.WeightDecay)
	switch o.cfg.Name {
	case SGD:
		for i := range params {
			var buf []float32
			if o.slots != nil {
				buf = o.slots[0][i]
			}
			sgd(params[i], grads[i], buf, float32(lr), float32(o.cfg.Momentum), wd)
		}
	case Adam:
		// Bias corrections folded into the step size and epsilon, as in
		// PyTorch's implementation:
		// w -= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
		t := float64(o.step)
		bc1 := 1 - math.Pow(o.cfg.Beta1, t)
		bc2 := math.Sqrt(1 - math.Pow(o.cfg.Beta2, t))
		for i := range params {
			adam(params[i], grads[i], o.slots[0][i], o.slots[1][i],
				float32(o.cfg.Beta1), float32(o.cfg.Beta2), float32(lr/bc1), float32(1/bc2), float32(o.cfg.Eps), wd)
		}
	}
}

// sgd is PyTorch's SGD with momentum μ (dampening 0, no Nesterov):
// g = ∇ + λw; b = μb + g; w -= lr·b. With no buffer (μ = 0), w -= lr·g.
func sgd(w, g, buf []float32, lr, mu, wd float32) {
	if buf == nil {
		for j := range w {
			w[j] -= lr * (g[j] + wd*w[j])
		}
		return
	}
	buf = buf[:len(w)]
	g = g[:len(w)]
	for j := range w {
		d := g[j] + wd*w[j]
		b := mu*buf[j] + d
		buf[j] = b
		w[j] -= lr * b
	}
}

// adam is one Adam update of one tensor: g = ∇ + λw; m = β1m + (1−β1)g;
// v = β2v + (1−β2)g²; w -= step · m / (√v·invBC2 + ε).
func adam(w, g, m, v []float32, b1, b2, step, invBC2, eps, wd float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for j := range w {
		d := g[j] + wd*w[j]
		mj := b1*m[j] + (1-b1)*d
		vj := b2*v[j] + (1-b2)*d*d
		m[j], v[j] = mj, vj
		w[j] -= step * mj / (float32(math.Sqrt(float64(vj)))*invBC2 + eps)
	}
}

// State is a snapshot of an optimizer's state.
type State struct {
	// Name is the optimizer (SGD or Adam).
	Name string
	// Step is the number of updates made.
	Step int64
	// Buffers maps "slot/tensor" (for example "m/fc1.weight" or
	// "momentum/conv1.bias") to the buffer's values. Plain SGD has none.
	Buffers map[string][]float32
}

// State returns a copy of the optimizer's state.
func (o *Optimizer) State() *State {
	s := &State{Name: o.cfg.Name, Step: o.step, Buffers: map[string][]float32{}}
	for k, slot := range o.slots {
		for i, buf := range slot {
			s.Buffers[slotNames(o.cfg.Name)[k]+"/"+o.names[i]] = append([]float32(nil), buf...)
		}
	}
	return s
}

// SetState restores a state returned by State (or read by ReadState) of an
// optimizer with the same name and tensors. Errors wrap ErrState.
func (o *Optimizer) SetState(s *State) error {
	if s.Name != o.cfg.Name {
		return fmt.Errorf("%w: state of %q, optimizer is %q", ErrState, s.Name, o.cfg.Name)
	}
	if s.Step < 0 {
		return fmt.Errorf("%w: negative step count %d", ErrState, s.Step)
	}
	want := 0
	for k, slot := range o.slots {
		for i, buf := range slot {
			key := slotNames(o.cfg.Name)[k] + "/" + o.names[i]
			src, ok := s.Buffers[key]
			if !ok {
				return fmt.Errorf("%w: no buffer %q", ErrState, key)
			}
			if len(src) != len(buf) {
				return fmt.Errorf("%w: buffer %q has %d values, want %d", ErrState, key, len(src), len(buf))
			}
			want++
		}
	}
	if len(s.Buffers) != want {
		return fmt.Errorf("%w: %d buffers, want %d", ErrState, len(s.Buffers), want)
	}
	for k, slot := range o.slots {
		for i, buf := range slot {
			copy(buf, s.Buffers[slotNames(o.cfg.Name)[k]+"/"+o.names[i]])
		}
	}
	o.step = s.Step
	return nil
}
