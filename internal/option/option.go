// Package option reports options that a library call cannot take: an
// [Error] names the option and the values it allows, and wraps the
// sentinel of the package that refused it (attack.ErrOptions,
// train.ErrConfig, optim.ErrConfig), so that callers test the kind with
// errors.Is and a command line maps the option back to its flag with
// errors.As.
package option

import (
	"errors"
	"fmt"
	"math"
)

// Error reports one option outside its allowed values.
type Error struct {
	// Kind is the sentinel of the refusing package, such as
	// attack.ErrOptions; Unwrap returns it.
	Kind error
	// Field names the option as its package stores or documents it: a JSON
	// name such as "max_iter" or "pgd.step_size", or a field path such as
	// "Optim.LR".
	Field string
	// Value is the refused value, Want the allowed values ("an integer
	// ≥ 0", "l2 or linf").
	Value any
	Want  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s %v: want %s", e.Kind, e.Field, e.Value, e.Want)
}

// Unwrap returns Kind.
func (e *Error) Unwrap() error { return e.Kind }

// Nest returns err as an option of a larger set: the *Error it holds with
// prefix put before its Field (as a struct that embeds another's options
// names them) and, when kind is not nil, with kind as its Kind. Another
// error is wrapped in kind when kind is not nil, else returned as it is;
// nil gives nil.
func Nest(kind error, prefix string, err error) error {
	if err == nil {
		return nil
	}
	var oe *Error
	if !errors.As(err, &oe) {
		if kind != nil {
			return fmt.Errorf("%w: %w", kind, err)
		}
		return err
	}
	c := *oe
	c.Field = prefix + c.Field
	if kind != nil {
		c.Kind = kind
	}
	return &c
}

// Finite reports whether v is neither NaN nor infinite.
func Finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
