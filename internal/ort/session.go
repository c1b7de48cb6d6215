package ort

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// ErrClosed is returned by [Session.Run] on a closed or nil session.
var ErrClosed = errors.New("ort: session is closed")

// SessionOptions configures a [Session]. The zero value gives onnxruntime's
// defaults.
type SessionOptions struct {
	// Threads is the number of threads one run may use (onnxruntime's
	// intra-op threads); 0 lets onnxruntime choose (one per core).
	Threads int
	// ProfilePrefix, when not empty, turns on onnxruntime's profiler: the
	// session records the time of every node of every run and writes them,
	// as a Chrome trace (JSON), to a file named ProfilePrefix followed by
	// "_" and a timestamp and ".json" when it is closed. For measuring, not
	// for production: the trace grows with every run.
	ProfilePrefix string
	// NoSpinning stops idle intra-op threads from spinning while they wait
	// for work (onnxruntime's session config entry
	// "session.intra_op.allow_spinning" = "0"); they sleep instead. Spinning
	// cuts the latency of handing work to the threads, but on a machine
	// whose cores are busy with other processes a spinning thread takes
	// time from them, and from the thread it is waiting for.
	NoSpinning bool
	// Quiet stops onnxruntime from logging the session's errors to stderr
	// (only fatal ones are logged): for sessions whose failures are
	// expected, and returned by Run all the same.
	Quiet bool
}

// spinningKey is onnxruntime's session config key
// (kOrtSessionOptionsConfigAllowIntraOpSpinning in
// onnxruntime_session_options_config_keys.h).
const spinningKey = "session.intra_op.allow_spinning"

// TensorInfo describes an input or output of a model.
type TensorInfo struct {
	// Name is the tensor's name in the graph.
	Name string
	// Type is its element type; Undefined for non-tensor values.
	Type DataType
	// Shape lists its dimensions, with -1 for a dynamic (named or unknown)
	// dimension such as the batch size. It is empty both for a scalar and
	// for a tensor whose rank the model leaves unknown.
	Shape []int64
}

// String formats the info as in `x float32[-1 3]`.
func (i TensorInfo) String() string {
	return fmt.Sprintf("%s %v%v", i.Name, i.Type, i.Shape)
}

// Inspect returns the inputs and outputs of a serialized ONNX model, in graph
// order; graph inputs that are initializers are not listed. It loads the
// model into a temporary onnxruntime session, so it costs about as much as
// [NewSession]. It calls [Init].
func Inspect(model []byte) (inputs, outputs []TensorInfo, err error) {
	if err := Init(); err != nil {
		return nil, nil, err
	}
	inputs, outputs, err = inspect(model)
	if err != nil {
		return nil, nil, fmt.Errorf("ort: inspect: %w", err)
	}
	return inputs, outputs, nil
}

// inspect is Inspect after Init.
func inspect(model []byte) (inputs, outputs []TensorInfo, err error) {
	if len(model) == 0 {
		return nil, nil, errors.New("empty model")
	}
	in, out, err := ortgo.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, nil, err
	}
	return tensorInfos(in), tensorInfos(out), nil
}

func tensorInfos(infos []ortgo.InputOutputInfo) []TensorInfo {
	out := make([]TensorInfo, len(infos))
	for i, info := range infos {
		out[i] = TensorInfo{
			Name:  info.Name,
			Type:  DataType(info.DataType),
			Shape: slices.Clone([]int64(info.Dimensions)),
		}
	}
	return out
}

// Session is an ONNX model loaded into onnxruntime, ready to run. Its methods
// are safe for concurrent use; [Session.Close] waits for runs in progress.
type Session struct {
	mu      sync.RWMutex // held for reading by Run, for writing by Close
	s       *ortgo.DynamicAdvancedSession
	inputs  []TensorInfo
	outputs []TensorInfo
}

// NewSession loads a serialized ONNX model. The session's inputs and outputs
// are all of the model's, in graph order (see [Inspect]). It calls [Init].
func NewSession(model []byte, opts SessionOptions) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	s, err := newSession(model, opts)
	if err != nil {
		return nil, fmt.Errorf("ort: new session: %w", err)
	}
	return s, nil
}

// OpenSession loads the ONNX model in the file at path, like [NewSession].
func OpenSession(path string, opts SessionOptions) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	model, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ort: open session: %w", err)
	}
	s, err := newSession(model, opts)
	if err != nil {
		return nil, fmt.Errorf("ort: open session %s: %w", path, err)
	}
	return s, nil
}

func newSession(model []byte, opts SessionOptions) (*Session, error) {
	if opts.Threads < 0 {
		return nil, fmt.Errorf("negative thread count %d", opts.Threads)
	}
	inputs, outputs, err := inspect(model)
	if err != nil {
		return nil, err
	}
	// onnxruntime_go indexes the first input and output of every run.
	if len(inputs) == 0 || len(outputs) == 0 {
		return nil, fmt.Errorf("model has %d inputs and %d outputs: need at least one of each", len(inputs), len(outputs))
	}
	options, err := opts.ortOptions()
	if err != nil {
		return nil, err
	}
	defer options.Destroy()
	s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(model, names(inputs), names(outputs), options)
	if err != nil {
		return nil, err
	}
	return &Session{s: s, inputs: inputs, outputs: outputs}, nil
}

// ortOptions returns onnxruntime's session options for o; the caller
// destroys them.
func (o SessionOptions) ortOptions() (_ *ortgo.SessionOptions, err error) {
	options, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating session options: %w", err)
	}
	defer func() {
		if err != nil {
			options.Destroy()
		}
	}()
	if o.Threads > 0 {
		if err := options.SetIntraOpNumThreads(o.Threads); err != nil {
			return nil, fmt.Errorf("setting %d threads: %w", o.Threads, err)
		}
	}
	if o.ProfilePrefix != "" {
		if err := options.EnableProfiling(o.ProfilePrefix); err != nil {
			return nil, fmt.Errorf("enabling profiling: %w", err)
		}
	}
	if o.Quiet {
		if err := options.SetLogSeverityLevel(ortgo.LoggingLevelFatal); err != nil {
			return nil, fmt.Errorf("setting the log level: %w", err)
		}
	}
	if o.NoSpinning {
		if err := options.AddSessionConfigEntry(spinningKey, "0"); err != nil {
			return nil, fmt.Errorf("disabling thread spinning: %w", err)
		}
	}
	return options, nil
}

func names(infos []TensorInfo) []string {
	out := make([]string, len(infos))
	for i, info := range infos {
		out[i] = info.Name
	}
	return out
}

// Inputs describes the values that [Session.Run] takes, in order.
func (s *Session) Inputs() []TensorInfo { return cloneInfos(s.inputs) }

// Outputs describes the values that [Session.Run] computes, in order.
func (s *Session) Outputs() []TensorInfo { return cloneInfos(s.outputs) }

func cloneInfos(infos []TensorInfo) []TensorInfo {
	out := slices.Clone(infos)
	for i := range out {
		out[i].Shape = slices.Clone(out[i].Shape)
	}
	return out
}

// Run evaluates the model: inputs[i] feeds [Session.Inputs]()[i] and
// outputs[i] receives [Session.Outputs]()[i].
//
// Inputs are read in place. An output whose Data is non-nil is written in
// place and must have the shape the model computes; this is the way to run
// without allocating output memory. An output whose Data is nil is replaced
// by a Value holding newly allocated memory (copied from onnxruntime's), except
// that an output the model declares 0-d is allocated in Go and written in
// place; callers can keep the filled outputs and pass them to the next run.
// On error the outputs are unspecified.
func (s *Session) Run(inputs, outputs []Value) error {
	if s == nil {
		return ErrClosed
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.s == nil {
		return ErrClosed
	}
	if len(inputs) != len(s.inputs) || len(outputs) != len(s.outputs) {
		return fmt.Errorf("ort: run: got %d inputs and %d outputs, the model has %d (%s) and %d (%s)",
			len(inputs), len(outputs), len(s.inputs), strings.Join(names(s.inputs), ", "),
			len(s.outputs), strings.Join(names(s.outputs), ", "))
	}

	ortValues := make([]ortgo.Value, len(inputs)+len(outputs))
	ortIn, ortOut := ortValues[:len(inputs):len(inputs)], ortValues[len(inputs):]
	defer func() {
		for _, v := range ortValues {
			if v != nil {
				v.Destroy()
			}
		}
	}()

	for i, v := range inputs {
		var err error
		if ortIn[i], err = s.wrap(v, s.inputs[i], "input"); err != nil {
			return err
		}
	}
	for i := range outputs {
		info := s.outputs[i]
		if outputs[i].Data == nil {
			if len(info.Shape) != 0 {
				continue // allocated by onnxruntime
			}
			// onnxruntime_go cannot return a 0-d tensor it allocated.
			switch info.Type {
			case Float32:
				outputs[i] = Value{Shape: []int64{}, Data: make([]float32, 1)}
			case Float64:
				outputs[i] = Value{Shape: []int64{}, Data: make([]float64, 1)}
			case Int64:
				outputs[i] = Value{Shape: []int64{}, Data: make([]int64, 1)}
			default:
				continue // let onnxruntime allocate it, to report the type
			}
		}
		var err error
		if ortOut[i], err = s.wrap(outputs[i], info, "output"); err != nil {
			return err
		}
	}
	if err := s.s.Run(ortIn, ortOut); err != nil {
		return fmt.Errorf("ort: run: %w", err)
	}

	// Outputs still without data are those onnxruntime allocated.
	for i, v := range ortOut {
		switch {
		case outputs[i].Data == nil:
			out, err := fromORT(v)
			if err != nil {
				return fmt.Errorf("ort: run: output %q: %w", s.outputs[i].Name, err)
			}
			outputs[i] = out
		case len(outputs[i].Shape) == 0:
			copyScalar(outputs[i], v)
		}
	}
	return nil
}

// wrap checks v against the model's info and wraps it for onnxruntime.
func (s *Session) wrap(v Value, info TensorInfo, kind string) (ortgo.Value, error) {
	if t := v.DataType(); t != info.Type && t != Undefined && info.Type != Undefined {
		return nil, fmt.Errorf("ort: run: %s %q: got %v data, the model wants %v", kind, info.Name, t, info.Type)
	}
	w, err := v.toORT()
	if err != nil {
		return nil, fmt.Errorf("ort: run: %s %q: %w", kind, info.Name, err)
	}
	return w, nil
}

// Close releases the session's onnxruntime resources, after waiting for runs
// in progress. It is safe to call more than once and on a nil session;
// later runs return [ErrClosed].
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.s == nil {
		return nil
	}
	err := s.s.Destroy()
	s.s = nil
	if err != nil {
		return fmt.Errorf("ort: close session: %w", err)
	}
	return nil
}
