package model

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/marginaudit/marginaudit/internal/option"
)

// Names of the graph's tensors.
const (
	InputName  = "input"  // the images, [N, C, H, W]
	OutputName = "logits" // the class scores, [N, K]
	TargetName = "target" // LossGraph: the target distribution (one-hot labels), [N, K]
	LossName   = "loss"   // LossGraph: the mean cross-entropy over the batch, [1]
)

// Architecture kinds.
const (
	MLP = "mlp"
	CNN = "cnn"
)

// Errors wrapped by New and Arch.Validate.
var (
	ErrUnknownArch = errors.New("model: unknown architecture")
	ErrBadArch     = errors.New("model: bad architecture")
)

// Arch describes an architecture. Zero fields take the defaults of
// Arch.WithDefaults.
type Arch struct {
	// Kind is MLP or CNN.
	Kind string
	// Hidden lists the sizes of the dense hidden layers, each followed by
	// a ReLU. Default: [256, 256] for MLP, [128] for CNN. A CNN may have
	// none (pass an empty non-nil slice): its last conv stage then feeds the
	// output layer directly.
	Hidden []int
	// Channels lists the output channels of the CNN's conv stages (unused
	// for MLP). Default [32, 64].
	Channels []int
	// Kernel is the CNN's (odd) convolution kernel size. Default 3.
	Kernel int
}

// WithDefaults returns a copy of a with unset fields set to their defaults.
func (a Arch) WithDefaults() Arch {
	a.Kind = strings.ToLower(a.Kind)
	if a.Hidden == nil {
		switch a.Kind {
		case MLP:
			a.Hidden = []int{256, 256}
		case CNN:
			a.Hidden = []int{128}
		}
	}
	if a.Kind == CNN {
		if a.Channels == nil {
			a.Channels = []int{32, 64}
		}
		if a.Kernel == 0 {
			a.Kernel = 3
		}
	} else {
		a.Channels, a.Kernel = nil, 0
	}
	return a
}

// Validate checks a (after WithDefaults) for an input of c×h×w. Errors in
// a's fields wrap ErrUnknownArch (the kind) or ErrBadArch; errors.As finds
// an *option.Error naming the field, such as "Kind" or "Channels".
func (a Arch) Validate(c, h, w int) error {
	if a.Kind != MLP && a.Kind != CNN {
		return &option.Error{Kind: ErrUnknownArch, Field: "Kind", Value: strconv.Quote(a.Kind), Want: MLP + " or " + CNN}
	}
	if c <= 0 || h <= 0 || w <= 0 {
		return fmt.Errorf("%w: input shape %dx%dx%d", ErrBadArch, c, h, w)
	}
	bad := func(field string, value any, want string) error {
		return &option.Error{Kind: ErrBadArch, Field: field, Value: value, Want: want}
	}
	if slices.ContainsFunc(a.Hidden, func(n int) bool { return n <= 0 }) {
		return bad("Hidden", FormatInts(a.Hidden), "sizes ≥ 1")
	}
	if a.Kind == CNN {
		switch {
		case len(a.Channels) == 0:
			return bad("Channels", "(none)", "at least one conv stage")
		case slices.ContainsFunc(a.Channels, func(n int) bool { return n <= 0 }):
			return bad("Channels", FormatInts(a.Channels), "channel counts ≥ 1")
		case a.Kernel <= 0 || a.Kernel%2 == 0:
			return bad("Kernel", a.Kernel, "an odd size ≥ 1")
		case h>>len(a.Channels) == 0 || w>>len(a.Channels) == 0:
			return bad("Channels", FormatInts(a.Channels), fmt.Sprintf("at most %d pooling stages for images of %d×%d pixels",
				bits.Len(uint(min(h, w)))-1, h, w))
		}
	}
	return nil
}

// String formats a as in "mlp hidden=256,256" or
// "cnn channels=32,64 kernel=3 hidden=128".
func (a Arch) String() string {
	if a.Kind == CNN {
		return fmt.Sprintf("cnn channels=%s kernel=%d hidden=%s", FormatInts(a.Channels), a.Kernel, FormatInts(a.Hidden))
	}
	return fmt.Sprintf("%s hidden=%s", a.Kind, FormatInts(a.Hidden))
}

// FormatInts formats a list of sizes as "256,256" ("" for none).
func FormatInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// ParseInts parses a list formatted by FormatInts. The empty string is an
// empty, non-nil list.
func ParseInts(s string) ([]int, error) {
	out := []int{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("model: bad size list %q: %w", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// A Param is one weight tensor of a model.
type Param struct {
	Name string
	Dims []int64
	// Data holds the values, row-major; len(Data) is the product of Dims.
	Data []float32
	// FanIn and FanOut are the numbers of inputs and outputs of one
	// unit, used by the initialisation.
	FanIn, FanOut int
	// Bias is true for bias vectors (initialised to zero).
	Bias bool
	// Last is true for the output layer's weights (Glorot instead of He).
	Last bool
}

// A Model is an architecture for a given input shape and class count, with
// its weights.
type Model struct {
	Arch    Arch // with defaults applied
	C, H, W int  // input shape (channels, height, width)
	Classes int
	// Params lists the weights in graph order (conv1.weight, conv1.bias,
	// …, fc1.weight, fc1.bias, …). Their Data slices may be replaced, not
	// resized.
	Params []*Param
}

// New returns a model of architecture a for c×h×w images and the given number
// of classes, with all weights zero (see Init). Errors wrap ErrUnknownArch or
// ErrBadArch.
func New(a Arch, c, h, w, classes int) (*Model, error) {
	a = a.WithDefaults()
	if err := a.Validate(c, h, w); err != nil {
		return nil, err
	}
	if classes < 2 {
		return nil, fmt.Errorf("%w: %d classes", ErrBadArch, classes)
	}
	m := &Model{Arch: a, C: c, H: h, W: w, Classes: classes}
	in := c * h * w
	if a.Kind == CNN {
		ch, hh, ww := c, h, w
		for i, out := range a.Channels {
			k := a.Kernel
			m.add(fmt.Sprintf("conv%d", i+1), []int64{int64(out), int64(ch), int64(k), int64(k)}, ch*k*k, out*k*k, false)
			ch, hh, ww = out, hh/2, ww/2
		}
		in = ch * hh * ww
	}
	for i, out := range a.Hidden {
		m.add(fmt.Sprintf("fc%d", i+1), []int64{int64(out), int64(in)}, in, out, false)
		in = out
	}
	m.add(fmt.Sprintf("fc%d", len(a.Hidden)+1), []int64{int64(classes), int64(in)}, in, classes, true)
	return m, nil
}

// add appends a layer's weight and bias.
func (m *Model) add(layer string, dims []int64, fanIn, fanOut int, last bool) {
	n := 1
	for _, d := range dims {
		n *= int(d)
	}
	m.Params = append(m.Params,
		&Param{Name: layer + ".weight", Dims: dims, Data: make([]float32, n), FanIn: fanIn, FanOut: fanOut, Last: last},
		&Param{Name: layer + ".bias", Dims: dims[:1:1], Data: make([]float32, dims[0]), FanIn: fanIn, FanOut: fanOut, Bias: true, Last: last})
}

// NumParams returns the number of weights.
func (m *Model) NumParams() int {
	n := 0
	for _, p := range m.Params {
		n += len(p.Data)
	}
	return n
}

// Param returns the weight named name, or nil.
func (m *Model) Param(name string) *Param {
	for _, p := range m.Params {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// InputShape returns [C, H, W].
func (m *Model) InputShape() []int { return []int{m.C, m.H, m.W} }

// Clone returns a deep copy of m.
func (m *Model) Clone() *Model {
	c := *m
	c.Arch.Hidden = append([]int(nil), m.Arch.Hidden...)
	c.Arch.Channels = append([]int(nil), m.Arch.Channels...)
	c.Params = make([]*Param, len(m.Params))
	for i, p := range m.Params {
		q := *p
		q.Data = append([]float32(nil), p.Data...)
		c.Params[i] = &q
	}
	return &c
}
