package main

import (
	"io"
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	vcs := []debug.BuildSetting{
		{Key: "-buildmode", Value: "exe"},
		{Key: "vcs", Value: "git"},
		{Key: "vcs.revision", Value: "080af2f446900bab11abf17a1252b78e3a6176ac"},
		{Key: "vcs.time", Value: "2026-12-02T02:23:40Z"},
		{Key: "vcs.modified", Value: "true"},
	}
	clean := append(vcs[:4:4], debug.BuildSetting{Key: "vcs.modified", Value: "false"})
	for _, tt := range []struct {
		name string
		bi   *debug.BuildInfo
		want string
	}{
		{"no build info", nil, "devel (no build information)"},
		{"go install of a release", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}},
			"v1.2.0 (go1.26.8)"},
		{"go run in a checkout without VCS stamping", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			"devel (go1.26.8)"},
		{"go test", &debug.BuildInfo{}, "devel"},
		{"go build in a modified checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261202022340-080af2f44690+dirty"}, Settings: vcs},
			"v0.0.0-20261202022340-080af2f44690+dirty (revision 080af2f446900bab11abf17a1252b78e3a6176ac, 2026-12-02T02:23:40Z, modified, go1.26.8)"},
		{"devel with a clean revision", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: clean},
			"devel (revision 080af2f446900bab11abf17a1252b78e3a6176ac, 2026-12-02T02:23:40Z, go1.26.8)"},
	} {
		if got := formatVersion(tt.bi); got != tt.want {
			t.Errorf("%s: formatVersion = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestVersionFlag(t *testing.T) {
	stdout, stderr, code := runCLI(t, "--version")
	if code != 0 || stderr != "" || stdout != progName+" version "+version()+"\n" {
		t.Errorf("--version: exit %d, stdout %q, stderr %q; want %q", code, stdout, stderr, progName+" version "+version())
	}
	if strings.TrimSpace(version()) == "" {
		t.Error("version() is empty")
	}
	// With a command, --version is refused rather than ignored: the
	// command must not run (inspect would print the model).
	for _, args := range [][]string{
		{"--version", "inspect", models + "/mlp.onnx"},
		{"inspect", models + "/mlp.onnx", "--version"},
	} {
		stdout, stderr, code := runCLI(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "--version prints the version and takes no command") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 refusing the command", args, code, stdout, stderr)
		}
	}
	// -v is no version flag: it is left free.
	if _, _, code := runCLI(t, "-v"); code != 2 {
		t.Errorf("-v: exit %d, want 2 (unknown flag)", code)
	}
}

func TestCompletionScripts(t *testing.T) {
	app := newApp(io.Discard, io.Discard)
	for _, tt := range []struct {
		shell string
		want  []string
	}{
		{"bash", []string{completionFlag, "complete ", " " + progName + "\n"}},
		{"zsh", []string{"#compdef " + progName, completionFlag, "_describe"}},
		{"fish", []string{"complete -c " + progName, "-l version", "-l quiet"}},
	} {
		stdout, stderr, code := runCLI(t, "completion", tt.shell)
		if code != 0 || stderr != "" {
			t.Fatalf("completion %s: exit %d, stderr %q", tt.shell, code, stderr)
		}
		for _, w := range tt.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("completion %s lacks %q", tt.shell, w)
			}
		}
		if tt.shell != "fish" {
			continue
		}
		for _, cmd := range app.VisibleCommands() {
			if !strings.Contains(stdout, "-a '"+cmd.Name+"'") {
				t.Errorf("completion fish does not complete the command %s", cmd.Name)
			}
		}
		if n := strings.Count(stdout, "-l version"); n != 1 {
			t.Errorf("completion fish completes --version %d times, want once", n)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}, {"completion", "bash", "zsh"}} {
		stdout, stderr, code := runCLI(t, args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "bash, zsh, fish") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want a usage error naming the shells", args, code, stdout, stderr)
		}
	}
}

// The completion scripts' requests: the words so far and the flag last,
// reorderArgs or not. cli's flag suggestions read the word before the flag
// from os.Args, as in the real program.
func TestCompletionRequests(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		want    []string // lines that must be printed
		notWant []string
	}{
		{[]string{completionFlag}, []string{"audit", "train", "completion"}, []string{"man"}},
		{[]string{"audit", "ckpt/", "--o", completionFlag}, []string{"--out", "--overshoot"}, []string{"--norm"}},
		{[]string{"audit", "--data", "mnist", "ckpt/", "--nor", completionFlag}, []string{"--norm"}, []string{"--out"}},
		{[]string{"--thr", completionFlag}, []string{"--threads"}, nil},
		{[]string{"completion", completionFlag}, []string{"bash", "zsh", "fish"}, []string{"help"}},
	} {
		saved := os.Args
		os.Args = append([]string{progName}, tt.args...)
		stdout, stderr, code := runCLI(t, tt.args...)
		os.Args = saved
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", tt.args, code, stderr)
		}
		lines := strings.Split(stdout, "\n")
		for _, w := range tt.want {
			if !contains(lines, w) {
				t.Errorf("%q printed %q, want a line %q", tt.args, stdout, w)
			}
		}
		for _, w := range tt.notWant {
			if contains(lines, w) {
				t.Errorf("%q printed %q, want no line %q", tt.args, stdout, w)
			}
		}
	}
}

func TestReorderArgsKeepsCompletionFlagLast(t *testing.T) {
	app := newApp(nil, nil)
	for _, tt := range []struct{ in, want string }{
		{"audit ckpt/ --o " + completionFlag, "audit --o ckpt/ " + completionFlag},
		{"audit --norm " + completionFlag, "audit --norm " + completionFlag}, // not taken as --norm's value
		{"grad m.onnx -q " + completionFlag, "-q grad m.onnx " + completionFlag},
		{completionFlag, completionFlag},
	} {
		args := append([]string{progName}, strings.Fields(tt.in)...)
		if got := strings.Join(reorderArgs(app, args)[1:], " "); got != tt.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// The manual page is roff for section 1 and names every command and every
// flag of each.
func TestManPage(t *testing.T) {
	// Runs of help before, as in the other tests of this process, leave
	// cli's shared help command among its own subcommands (see manCommand).
	for _, args := range [][]string{{"help"}, {"help", "grad"}, {"grad", "--help"}, {"help", "help"}} {
		runCLI(t, args...)
	}
	stdout, stderr, code := runCLI(t, "man")
	if code != 0 || stderr != "" {
		t.Fatalf("man: exit %d, stderr %q", code, stderr)
	}
	if !strings.HasPrefix(stdout, ".nh\n.TH "+progName+" 1") {
		t.Errorf("man page starts %q, want a .TH header for section 1", stdout[:min(len(stdout), 40)])
	}
	app := newApp(io.Discard, io.Discard)
	for _, cmd := range app.VisibleCommands() {
		if !strings.Contains(stdout, "\n.SH "+cmd.Name+"\n") {
			t.Errorf("the man page has no section for the command %s", cmd.Name)
		}
		for _, f := range cmd.VisibleFlags() {
			name := "--" + f.Names()[0]
			if len(f.Names()[0]) == 1 {
				name = name[1:]
			}
			if !strings.Contains(stdout, `\fB`+name+`\fP`) {
				t.Errorf("the man page does not list %s %s", cmd.Name, name)
			}
		}
	}
	for _, f := range []string{"--version", "--threads", "--quiet"} {
		if !strings.Contains(stdout, `\fB`+f) {
			t.Errorf("the man page does not list the global flag %s", f)
		}
	}
	if _, _, code := runCLI(t, "man", "x"); code != 2 {
		t.Errorf("man x: exit %d, want 2", code)
	}
}
