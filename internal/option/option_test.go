package option

import (
	"errors"
	"fmt"
	"testing"
)

var (
	errInner = errors.New("inner: bad options")
	errOuter = errors.New("outer: bad configuration")
)

func TestNest(t *testing.T) {
	inner := fmt.Errorf("context: %w", &Error{Kind: errInner, Field: "steps", Value: 0, Want: "an integer ≥ 1"})
	err := Nest(errOuter, "Adv.", inner)
	var oe *Error
	if !errors.As(err, &oe) || oe.Field != "Adv.steps" || !errors.Is(err, errOuter) || errors.Is(err, errInner) {
		t.Errorf("Nest(outer, Adv., %v) = %v", inner, err)
	}
	if got, want := err.Error(), "outer: bad configuration: Adv.steps 0: want an integer ≥ 1"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if err := Nest(nil, "pgd.", inner); !errors.Is(err, errInner) || !errors.As(err, &oe) || oe.Field != "pgd.steps" {
		t.Errorf("Nest(nil, pgd., %v) = %v", inner, err)
	}
	plain := errors.New("input shape 0x28x28")
	if err := Nest(errOuter, "Arch.", plain); !errors.Is(err, errOuter) || !errors.Is(err, plain) {
		t.Errorf("Nest(outer, Arch., %v) = %v, want both wrapped", plain, err)
	}
	if err := Nest(nil, "x.", plain); err != plain {
		t.Errorf("Nest(nil, x., %v) = %v, want it as it is", plain, err)
	}
	if err := Nest(errOuter, "x.", nil); err != nil {
		t.Errorf("Nest of nil = %v", err)
	}
}
