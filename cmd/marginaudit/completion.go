package main

import (
	_ "embed"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts ask the program for the words that may come
// next (cli's --generate-bash-completion); fish's is generated whole from
// the command definitions.
var (
	//go:embed completion/marginaudit.bash
	bashCompletion string
	//go:embed completion/marginaudit.zsh
	zshCompletion string
)

// completionShells are the shells `completion` writes scripts for.
var completionShells = []string{"bash", "zsh", "fish"}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script for bash, zsh or fish",
		UsageText: progName + " completion bash|zsh|fish",
		Description: wrapText("Prints the script to stdout. Load it in the running shell with " +
			"`source <(" + progName + " completion bash)` (or zsh), or save it where the shell " +
			"reads completions: /etc/bash_completion.d/" + progName + ", a folder of $fpath as _" + progName +
			", ~/.config/fish/completions/" + progName + ".fish."),
		BashComplete: func(c *cli.Context) {
			if c.NArg() == 0 {
				fmt.Fprintln(c.App.Writer, strings.Join(completionShells, "\n"))
			}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 || !slices.Contains(completionShells, c.Args().First()) {
				return usagef("completion", "want one shell: %s", strings.Join(completionShells, ", "))
			}
			script, err := completionScript(c.Args().First())
			if err != nil {
				return err
			}
			_, err = io.WriteString(c.App.Writer, script)
			return err
		},
	}
}

// completionScript returns the program's completion script for shell.
func completionScript(shell string) (string, error) {
	switch shell {
	case "bash":
		return bashCompletion, nil
	case "zsh":
		return zshCompletion, nil
	}
	// From an app that has not run: a running one has its help and
	// version flags among its flags already, and fish would get them twice.
	s, err := newApp(io.Discard, io.Discard).ToFishCompletion()
	if err != nil {
		return "", fmt.Errorf("completion: %w", err)
	}
	return s, nil
}

// manCommand prints the manual page, generated from the command
// definitions; `make man` writes it to marginaudit.1. It is hidden: the
// page is its own documentation.
func manCommand() *cli.Command {
	return &cli.Command{
		Name:      "man",
		Usage:     "print the manual page (roff, section 1)",
		UsageText: progName + " man > " + progName + ".1",
		Hidden:    true,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("man", "takes no arguments")
			}
			// From an app that has not run, as for fish: cli's help command
			// is one value shared by every app and command it sets up, and
			// after several runs in one process (tests) it lists itself
			// among its subcommands, which ToMan follows forever.
			page, err := newApp(io.Discard, io.Discard).ToManWithSection(1)
			if err != nil {
				return fmt.Errorf("man: %w", err)
			}
			_, err = io.WriteString(c.App.Writer, page)
			return err
		},
	}
}
