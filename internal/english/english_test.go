package english

import (
	"fmt"
	"testing"
)

func TestPlural(t *testing.T) {
	for _, tt := range []struct {
		n     int
		thing string
		want  string
	}{
		{0, "image", "0 images"},
		{1, "image", "1 image"},
		{2, "checkpoint", "2 checkpoints"},
		{-1, "step", "-1 steps"},
	} {
		if got := Plural(tt.n, tt.thing); got != tt.want {
			t.Errorf("Plural(%d, %q) = %q; want %q", tt.n, tt.thing, got, tt.want)
		}
	}
}

func ExamplePlural() {
	fmt.Println(Plural(1, "image"), "and", Plural(3, "checkpoint"))
	// Output: 1 image and 3 checkpoints
}
