package optim

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// refStep is a float64 transcription of torch.optim.SGD and torch.optim.Adam
// (PyTorch 2.x docs, "Algorithm" sections) for one tensor.
type refState struct {
	buf, m, v []float64
	t         int
}

func refStep(c Config, st *refState, w, g []float64, lr float64) {
	st.t++
	if st.buf == nil {
		st.buf = make([]float64, len(w))
		st.m = make([]float64, len(w))
		st.v = make([]float64, len(w))
	}
	for j := range w {
		d := g[j] + c.WeightDecay*w[j]
		switch c.Name {
		case SGD:
			if c.Momentum != 0 {
				if st.t == 1 {
					st.buf[j] = d
				} else {
					st.buf[j] = c.Momentum*st.buf[j] + d
				}
				d = st.buf[j]
			}
			w[j] -= lr * d
		case Adam:
			st.m[j] = c.Beta1*st.m[j] + (1-c.Beta1)*d
			st.v[j] = c.Beta2*st.v[j] + (1-c.Beta2)*d*d
			mh := st.m[j] / (1 - math.Pow(c.Beta1, float64(st.t)))
			vh := st.v[j] / (1 - math.Pow(c.Beta2, float64(st.t)))
			w[j] -= lr * mh / (math.Sqrt(vh) + c.Eps)
		}
	}
}

func TestStepMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"sgd", Config{Name: SGD, LR: 0.1}},
		{"sgd-momentum", Config{Name: SGD, LR: 0.05, Momentum: 0.9}},
		{"sgd-momentum-wd", Config{Name: SGD, LR: 0.05, Momentum: 0.9, WeightDecay: 5e-4}},
		{"adam", Config{Name: Adam, LR: 1e-3}},
		{"adam-wd", Config{Name: Adam, LR: 1e-2, WeightDecay: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			sizes := []int{7, 3}
			o, err := New(tc.cfg, []string{"a", "b"}, sizes)
			if err != nil {
				t.Fatal(err)
			}
			cfg := o.Config()
			w32 := [][]float32{make([]float32, 7), make([]float32, 3)}
			w64 := [][]float64{make([]float64, 7), make([]float64, 3)}
			refs := make([]refState, 2)
			for i := range w32 {
				for j := range w32[i] {
					w32[i][j] = float32(r.NormFloat64())
					w64[i][j] = float64(w32[i][j])
				}
			}
			for step := range 20 {
				g32 := [][]float32{make([]float32, 7), make([]float32, 3)}
				for i := range g32 {
					g64 := make([]float64, len(g32[i]))
					for j := range g32[i] {
						g32[i][j] = float32(r.NormFloat64())
						g64[j] = float64(g32[i][j])
					}
					refStep(cfg, &refs[i], w64[i], g64, cfg.LR)
				}
				o.Step(cfg.LR, w32, g32)
				for i := range w32 {
					for j := range w32[i] {
						// float32 arithmetic against float64: a few ulps of
						// the weights (|w| ~ 1) per step.
						if d := math.Abs(float64(w32[i][j]) - w64[i][j]); d > 1e-5 {
							t.Fatalf("step %d: w[%d][%d] = %v, reference %v", step+1, i, j, w32[i][j], w64[i][j])
						}
					}
				}
			}
			if o.Steps() != 20 {
				t.Errorf("Steps() = %d, want 20", o.Steps())
			}
		})
	}
}

func TestStateRoundTrip(t *testing.T) {
	for _, cfg := range []Config{{Name: SGD, Momentum: 0.9}, {Name: SGD}, {Name: Adam}} {
		t.Run(cfg.Name, func(t *testing.T) {
			names, sizes := []string{"w", "b"}, []int{5, 2}
			r := rand.New(rand.NewPCG(3, 4))
			randT := func() [][]float32 {
				out := [][]float32{make([]float32, 5), make([]float32, 2)}
				for _, v := range out {
					for j := range v {
						v[j] = float32(r.NormFloat64())
					}
				}
				return out
			}
			a, _ := New(cfg, names, sizes)
			w := randT()
			for range 3 {
				a.Step(0.01, w, randT())
			}
			data, err := a.State().MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var st State
			if err := st.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
			b, _ := New(cfg, names, sizes)
			if err := b.SetState(&st); err != nil {
				t.Fatal(err)
			}
			wb := [][]float32{slices.Clone(w[0]), slices.Clone(w[1])}
			for range 3 {
				g := randT()
				a.Step(0.01, w, g)
				b.Step(0.01, wb, g)
			}
			for i := range w {
				if !slices.Equal(w[i], wb[i]) {
					t.Errorf("tensor %d: restored optimizer diverged: %v vs %v", i, wb[i], w[i])
				}
			}
		})
	}
}

func TestSetStateRejects(t *testing.T) {
	a, _ := New(Config{Name: Adam}, []string{"w"}, []int{3})
	s, _ := New(Config{Name: SGD, Momentum: 0.5}, []string{"w"}, []int{3})
	if err := a.SetState(s.State()); !errors.Is(err, ErrState) {
		t.Errorf("Adam.SetState(SGD state) = %v, want ErrState", err)
	}
	st := a.State()
	st.Buffers["m/w"] = st.Buffers["m/w"][:2]
	if err := a.SetState(st); !errors.Is(err, ErrState) {
		t.Errorf("SetState(short buffer) = %v, want ErrState", err)
	}
	st = a.State()
	st.Buffers["x/w"] = nil
	if err := a.SetState(st); !errors.Is(err, ErrState) {
		t.Errorf("SetState(extra buffer) = %v, want ErrState", err)
	}
}

func TestUnmarshalCorrupt(t *testing.T) {
	a, _ := New(Config{Name: Adam}, []string{"w", "b"}, []int{4, 1})
	good, _ := a.State().MarshalBinary()
	cases := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("xxxxxxxx"), good[8:]...),
		"truncated": good[:len(good)-5],
		"bitflip":   func() []byte { b := slices.Clone(good); b[20] ^= 1; return b }(),
	}
	for name, data := range cases {
		var st State
		if err := st.UnmarshalBinary(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func FuzzUnmarshalState(f *testing.F) {
	a, _ := New(Config{Name: Adam}, []string{"w", "b"}, []int{4, 1})
	good, _ := a.State().MarshalBinary()
	f.Add(good)
	f.Fuzz(func(t *testing.T, data []byte) {
		var st State
		if err := st.UnmarshalBinary(data); err != nil {
			return
		}
		again, err := st.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var st2 State
		if err := st2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
	})
}

func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		s      Schedule
		epochs int
		want   []float64 // epochs 1…
	}{
		{Schedule{}, 3, []float64{1, 1, 1}},
		{Schedule{Kind: StepDecay, StepSize: 2, Gamma: 0.5}, 5, []float64{1, 1, 0.5, 0.5, 0.25}},
		{Schedule{Kind: StepDecay}, 3, []float64{1, 0.1, 0.01}},
		// cos(π·e/4) for e = 0…3: 1, √½, 0, −√½.
		{Schedule{Kind: Cosine}, 4, []float64{1, (1 + math.Sqrt2/2) / 2, 0.5, (1 - math.Sqrt2/2) / 2}},
		{Schedule{Kind: Cosine, MinLR: 0.1}, 2, []float64{1, 0.55}},
	} {
		s := tc.s.WithDefaults()
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		for e, want := range tc.want {
			if got := s.LR(1, e+1, tc.epochs); math.Abs(got-want) > 1e-12 {
				t.Errorf("%v: epoch %d: LR = %v, want %v", s, e+1, got, want)
			}
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{Name: "rmsprop"},
		{Name: SGD, LR: -1},
		{Name: SGD, Momentum: 1},
		{Name: Adam, Beta2: 1.5},
		{Name: Adam, WeightDecay: -1},
		{Name: Adam, Schedule: Schedule{Kind: "linear"}},
		{Name: Adam, Schedule: Schedule{Kind: StepDecay, Gamma: 2}},
	}
	for _, c := range bad {
		if err := c.WithDefaults().Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: Validate = %v, want ErrConfig", c, err)
		}
	}
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
}
