// Package english writes the counted nouns of messages and captions, which
// the command line and the report share.
package english

import "fmt"

// Plural returns "1 thing" for n = 1 and "n things" otherwise: the plural
// is thing + "s", so thing must be a noun whose plural takes an s.
func Plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
