package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is the program's version as `marginaudit --version` prints it.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return formatVersion(nil)
	}
	return formatVersion(bi)
}

// formatVersion describes a build: the main module's version ("devel" for
// a build without one, as `go build` in a checkout without a tag or `go run`
// make it: "(devel)" or empty), then in parentheses the VCS revision, its
// commit time and whether the tree had uncommitted changes ("modified"), as
// the go command stamps them into the binary, and the Go version. bi == nil
// is a binary without build information.
func formatVersion(bi *debug.BuildInfo) string {
	if bi == nil {
		return "devel (no build information)"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	var details []string
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		details = append(details, "revision "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		details = append(details, t)
	}
	if settings["vcs.modified"] == "true" {
		details = append(details, "modified")
	}
	if bi.GoVersion != "" {
		details = append(details, bi.GoVersion)
	}
	if len(details) == 0 {
		return v
	}
	return fmt.Sprintf("%s (%s)", v, strings.Join(details, ", "))
}

// versionFlag is the global `--version`, which prints the version when no
// command is given (cli's own would also take -v, which this program leaves
// free).
var versionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit"}
