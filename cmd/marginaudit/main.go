// Command marginaudit inspects ONNX classifiers, adds gradient graphs to them
// with onnxgrad, and computes their input Jacobians with onnxruntime.
//
// Usage:
//
//	marginaudit [-q] [--threads N] COMMAND [ARGUMENTS]
//
// Commands:
//
//	inspect    describe a model and say whether onnxgrad can differentiate it
//	grad       write a model that also computes gradients
//	jacobian   compute the per-sample Jacobian of a model on a .npy batch
//	train      train a classifier, one ONNX checkpoint per epoch
//	audit      measure DeepFool margins and PGD robustness of checkpoints
//	report     figures, index.html and the study's observations from audits
//	diff       compare two audits image by image; gate regressions for CI
//	study      train standard and adversarial models, audit, report
//	merge      merge the folders of an audit's shards (audit --shard I/N)
//	status     show what the shards of an audit have done and what remains
//	selfcheck  check onnxgrad's Jacobians against PyTorch's on the fixtures
//	completion print a shell completion script for bash, zsh or fish
//
// `marginaudit --version` prints the version and the VCS revision it was
// built from; `marginaudit man` prints the manual page (`make man`).
//
// Run `marginaudit help COMMAND` for a command's flags. Flags may follow the
// arguments. The exit status is 0 on success, 1 on a runtime error and 2 on a
// usage error; errors are printed to stderr, results to stdout.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/marginaudit/marginaudit/onnxgrad"
)

const progName = "marginaudit"

// completionFlag is the flag with which the completion scripts ask the
// program for the words that may come next (cli's EnableBashCompletion).
const completionFlag = "--generate-bash-completion"

func main() { os.Exit(exitCode(run(os.Args, os.Stdout, os.Stderr))) }

// usageError is a mistake in the command line: exit status 2.
type usageError struct {
	cmd string // the command, "" for the program as a whole
	msg string
}

func (e *usageError) Error() string {
	if e.cmd == "" {
		return e.msg
	}
	return e.cmd + ": " + e.msg
}

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitCode maps run's error to the exit status.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// globalUsage is the synopsis of the program.
const globalUsage = progName + " [-q] [--threads N] COMMAND [ARGUMENTS]"

// newApp returns the command-line application writing to stdout and stderr.
func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      progName,
		Usage:     "audit the decision margins of ONNX classifiers",
		UsageText: globalUsage,
		Description: wrapText("Flags may come before or after a command's arguments. " +
			"The exit status is 0 on success, 1 on a runtime error and 2 on a usage error."),
		// --version is a flag of ours: cli's own would add a VERSION
		// section, which differs from build to build, to the help.
		HideVersion:          true,
		EnableBashCompletion: true,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      false,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print no progress on stderr"},
			&cli.IntFlag{Name: "threads", Usage: fmt.Sprintf("use `N` threads (0: one per core; at most %d): attacks run N batches at once, training N parts of 64 images of a batch", maxThreads)},
			versionFlag,
		},
		Commands: []*cli.Command{
			inspectCommand(),
			gradCommand(),
			jacobianCommand(),
			trainCommand(),
			auditCommand(),
			reportCommand(),
			diffCommand(),
			studyCommand(),
			mergeCommand(),
			statusCommand(),
			selfcheckCommand(),
			completionCommand(),
			manCommand(),
		},
		Before: checkGlobalFlags,
		// Errors are printed by run; keep cli from printing or exiting.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usagef("", "%v", err)
		},
		Action: func(c *cli.Context) error {
			if c.Bool(versionFlag.Name) && !c.Args().Present() {
				_, err := fmt.Fprintf(c.App.Writer, "%s version %s\n", progName, version())
				return err
			}
			if c.Args().Present() {
				return usagef("", "unknown command %q", c.Args().First())
			}
			return usagef("", "no command given")
		},
	}
	for _, cmd := range app.Commands {
		name := cmd.Name
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return usagef(name, "%v", err)
		}
	}
	return app
}

// run runs the program with the command line args (args[0] is the program
// name), writing results to stdout and errors and progress to stderr.
// Errors are printed before they are returned; see exitCode for the exit
// status they call for.
func run(args []string, stdout, stderr io.Writer) error {
	// SIGTERM too: Slurm at a job's time limit and Kubernetes on eviction
	// send it before SIGKILL, and the run then stops between steps, its
	// finished checkpoints kept and its heartbeat saying why.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, reorderArgs(app, args))
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		// Only cli's help command returns these ("No help topic for 'x'").
		err = usagef("help", "%s", lowerFirst(ec.Error()))
	}
	if cause := context.Cause(ctx); err != nil && errors.Is(err, context.Canceled) && cause != nil && !errors.Is(err, cause) {
		// Stopped by a signal, with an error that does not say so ("context
		// canceled"): say which signal.
		err = &stoppedError{cause: cause, err: err}
	}
	if err != nil {
		printError(stderr, app, err)
	}
	return err
}

// stoppedError is the error of a command stopped by a signal.
type stoppedError struct {
	cause, err error
}

func (e *stoppedError) Error() string { return "stopped: " + e.cause.Error() }
func (e *stoppedError) Unwrap() error { return e.err }

// printError writes err to w as `marginaudit: message`, followed by a hint
// line where one helps. Joined errors (the failed checkpoints of an audit,
// the failed fixtures of selfcheck) are printed one after the other, each
// once.
func printError(w io.Writer, app *cli.App, err error) {
	var ue *usageError
	var uo *onnxgrad.UnsupportedOpError
	var he *hintedError
	hint, inner := "", err
	if h, ok := err.(*hintedError); ok {
		hint, inner = h.hint, h.err
	}
	switch multi, isMulti := inner.(interface{ Unwrap() []error }); {
	case errors.As(err, &ue):
		fmt.Fprintf(w, "%s: %v\n", progName, err)
		if cmd := app.Command(ue.cmd); cmd != nil && ue.cmd != "help" {
			fmt.Fprintf(w, "usage: %s\n", cmd.UsageText)
			fmt.Fprintf(w, "run '%s help %s' for details\n", progName, cmd.Name)
		} else {
			fmt.Fprintf(w, "usage: %s\n", globalUsage)
			fmt.Fprintf(w, "run '%s help' for the commands\n", progName)
		}
	case isMulti:
		for _, e := range multi.Unwrap() {
			printError(w, app, e)
		}
		if hint != "" {
			fmt.Fprintf(w, "hint: %s\n", hint)
		}
	case errors.As(err, &uo):
		file := uo.File
		if file == "" {
			file = "model"
		}
		fmt.Fprintf(w, "%s: %s: unsupported op %q in node %q: %s\n", progName, file, uo.OpType, uo.Node, uo.Reason())
		fmt.Fprintf(w, "hint: '%s inspect %s' lists every op of the model and whether onnxgrad differentiates it\n", progName, file)
	default:
		// An error that wraps joined ones (study's audits) has a line for
		// each; each gets the program's name.
		for line := range strings.SplitSeq(err.Error(), "\n") {
			fmt.Fprintf(w, "%s: %s\n", progName, line)
		}
		if errors.As(err, &he) {
			fmt.Fprintf(w, "hint: %s\n", he.hint)
		}
	}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// reorderArgs moves flags given after a command's arguments in front of
// them, and global flags given after the command name in front of the
// command, because urfave/cli v2 (like the flag package) stops parsing flags
// at the first argument: `marginaudit grad m.onnx --out g.onnx -q` becomes
// `marginaudit -q grad --out g.onnx m.onnx`. Everything after "--" stays an
// argument. Unknown flags stay with the command, which reports them.
//
// cli's shell completion flag, --generate-bash-completion, must stay last:
// it is taken off before the reordering and put back after it.
func reorderArgs(app *cli.App, args []string) []string {
	if n := len(args); n > 1 && args[n-1] == completionFlag {
		return append(reorderArgs(app, args[:n-1:n-1]), completionFlag)
	}
	if len(args) < 2 {
		return args
	}
	global := flagArity(app.Flags)
	out := []string{args[0]}
	i := 1
	for ; i < len(args) && isFlag(args[i]); i++ {
		out = append(out, args[i])
		if takesValue(global, args[i]) && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	if i >= len(args) || args[i] == "--" {
		return args
	}
	cmd := app.Command(args[i])
	if cmd == nil {
		return args
	}
	local := flagArity(cmd.Flags)
	var flags, positional []string
	dashes := false
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			dashes = true
			positional = append(positional, rest[j+1:]...)
			break
		}
		if !isFlag(a) {
			positional = append(positional, a)
			continue
		}
		name := flagName(a)
		_, isLocal := local[name]
		_, isGlobal := global[name]
		dst, arity := &flags, local
		if isGlobal && !isLocal {
			dst, arity = &out, global
		}
		*dst = append(*dst, a)
		if takesValue(arity, a) && j+1 < len(rest) {
			j++
			*dst = append(*dst, rest[j])
		}
	}
	out = append(out, args[i])
	out = append(out, flags...)
	if dashes {
		out = append(out, "--")
	}
	return append(out, positional...)
}

func isFlag(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

// flagName returns the name in "-n", "--name" or "--name=value".
func flagName(a string) string {
	name := strings.TrimLeft(a, "-")
	if k := strings.IndexByte(name, '='); k >= 0 {
		name = name[:k]
	}
	return name
}

// flagArity maps every name and alias of flags to whether it takes a value.
func flagArity(flags []cli.Flag) map[string]bool {
	m := map[string]bool{"help": false, "h": false}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			m[n] = !isBool
		}
	}
	return m
}

// takesValue reports whether the flag a consumes the next argument.
func takesValue(arity map[string]bool, a string) bool {
	return !strings.Contains(a, "=") && arity[flagName(a)]
}
