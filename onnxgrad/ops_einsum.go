package onnxgrad

// Einsum (https://onnx.ai/onnx/operators/onnx__Einsum.html), in the one-
// and two-operand forms exporters emit: batched matrix products
// ("bij,bjk->bik", "...ij,...jk->...ik"), attention scores
// ("bhqd,bhkd->bhqk"), contractions ("nchw,oc->nohw"), transposes
// ("ij->ji") and sums ("ij->i"). Ellipses are spelt out as letters of
// their own. Any equation gets a shape; an index repeated within one
// operand (a diagonal or a trace) and more than two operands have no
// gradient rule and are refused with an error saying so.

import (
	"slices"
	"strings"
)

// einsum is an Einsum equation with every axis named by one letter.
type einsum struct {
	in   []string // each operand's indices
	out  string
	dims map[byte]Dim
	used map[byte]bool
	// diagonal is set when an index repeats within one operand (a diagonal
	// or a trace), which has a shape but no gradient rule.
	diagonal bool
}

// fresh returns a letter the equation does not use yet.
func (e *einsum) fresh() (byte, bool) {
	for _, l := range []byte("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") {
		if !e.used[l] {
			e.used[l] = true
			return l, true
		}
	}
	return 0, false
}

func isEinsumLetter(l byte) bool { return ('a' <= l && l <= 'z') || ('A' <= l && l <= 'Z') }

// einsumTerm is one term of an equation: the letters before and after its
// ellipsis, if it has one.
type einsumTerm struct {
	pre, post string
	ellipsis  bool
}

func parseEinsumTerm(s string) (einsumTerm, bool) {
	pre, post, ell := strings.Cut(s, "...")
	t := einsumTerm{pre: pre, post: post, ellipsis: ell}
	letters := pre + post
	for i := range len(letters) {
		if !isEinsumLetter(letters[i]) {
			return t, false
		}
	}
	return t, true
}

// readEinsum parses the node's equation against its inputs' shapes. The
// axes an ellipsis stands for get letters of their own, aligned from the
// right across operands; an operand whose such axis has size 1 while
// another's does not (broadcasting) gets a letter only it has, so that the
// axis is summed like any index of one operand only.
func readEinsum(c *nodeCtx) (*einsum, error) {
	eq := strings.ReplaceAll(c.attrString("equation", ""), " ", "")
	if c.err != nil {
		return nil, c.err
	}
	lhs, rhs, explicit := strings.Cut(eq, "->")
	strs := strings.Split(lhs, ",")
	if len(strs) != len(c.n.GetInput()) {
		return nil, c.errorf("equation %q has %d operands, the node %d inputs", eq, len(strs), len(c.n.GetInput()))
	}
	e := &einsum{dims: map[byte]Dim{}, used: map[byte]bool{}}
	for i := range len(eq) {
		e.used[eq[i]] = true
	}
	terms := make([]einsumTerm, len(strs))
	shapes := make([]Shape, len(strs))
	ell := 0 // the number of axes the ellipsis stands for
	for i, s := range strs {
		t, ok := parseEinsumTerm(s)
		if !ok {
			return nil, c.errorf("equation %q: term %q is not letters around at most one ellipsis", eq, s)
		}
		shapes[i] = c.shapeIn(i)
		if c.err != nil {
			return nil, c.err
		}
		n := len(t.pre) + len(t.post)
		switch {
		case t.ellipsis && len(shapes[i]) >= n:
			ell = max(ell, len(shapes[i])-n)
		case len(shapes[i]) != n:
			return nil, c.errorf("equation %q: term %q does not match input %d of rank %d", eq, s, i, len(shapes[i]))
		}
		terms[i] = t
	}
	broad := make([]byte, ell)
	for k := range broad {
		l, ok := e.fresh()
		if !ok {
			return nil, c.errorf("equation %q uses too many indices", eq)
		}
		broad[k] = l
	}
	// An ellipsis axis broadcasts when some operand has size 1 there and
	// another does not (or may not).
	notOne := make([]bool, ell)
	for i, t := range terms {
		if t.ellipsis {
			m := len(shapes[i]) - len(t.pre) - len(t.post)
			for k, d := range shapes[i][len(t.pre) : len(t.pre)+m] {
				notOne[ell-m+k] = notOne[ell-m+k] || d != known(1)
			}
		}
	}
	for i, t := range terms {
		idx := []byte(t.pre)
		if t.ellipsis {
			m := len(shapes[i]) - len(t.pre) - len(t.post)
			for k, d := range shapes[i][len(t.pre) : len(t.pre)+m] {
				l := broad[ell-m+k]
				if d == known(1) && notOne[ell-m+k] {
					var ok bool
					if l, ok = e.fresh(); !ok {
						return nil, c.errorf("equation %q uses too many indices", eq)
					}
				}
				idx = append(idx, l)
			}
		}
		idx = append(idx, t.post...)
		for a, l := range idx {
			if slices.Contains(idx[:a], l) {
				e.diagonal = true
			}
			d, seen := e.dims[l]
			switch {
			case !seen || (!d.Known() && shapes[i][a].Known()):
				e.dims[l] = shapes[i][a]
			case d.Known() && shapes[i][a].Known() && d.Value != shapes[i][a].Value:
				return nil, c.errorf("equation %q: index %q has sizes %d and %d", eq, l, d.Value, shapes[i][a].Value)
			}
		}
		e.in = append(e.in, string(idx))
	}
	if explicit {
		t, ok := parseEinsumTerm(rhs)
		if !ok {
			return nil, c.errorf("equation %q: output %q is not letters around at most one ellipsis", eq, rhs)
		}
		e.out = t.pre
		if t.ellipsis {
			e.out += string(broad)
		}
		e.out += t.post
	} else {
		e.out = string(broad) + implicitOutput(strs)
	}
	for a := range len(e.out) {
		l := e.out[a]
		if _, ok := e.dims[l]; !ok || strings.IndexByte(e.out[:a], l) >= 0 {
			return nil, c.errorf("equation %q: output index %q does not occur in the operands or repeats", eq, l)
		}
	}
	return e, nil
}

// implicitOutput returns the output indices of an equation without "->"
// (after those of the ellipsis): the indices that occur once, in
// alphabetical order.
func implicitOutput(terms []string) string {
	count := map[byte]int{}
	for _, s := range terms {
		for i := range len(s) {
			count[s[i]]++
		}
	}
	var once []byte
	for l, n := range count {
		if n == 1 && isEinsumLetter(l) {
			once = append(once, l)
		}
	}
	slices.Sort(once)
	return string(once)
}

// https://onnx.ai/onnx/operators/onnx__Einsum.html
func inferEinsum(c *nodeCtx) error {
	for i := range c.n.GetInput() {
		if t := c.in(i); t == nil || !t.hasShape {
			c.setOut(0, &tensorInfo{elem: c.elem()})
			return nil
		}
	}
	e, err := readEinsum(c)
	if err != nil {
		return err
	}
	out := make(Shape, len(e.out))
	for a := range len(e.out) {
		out[a] = e.dims[e.out[a]]
	}
	c.setOut(0, &tensorInfo{elem: c.elem(), shape: out, hasShape: true})
	return nil
}

// gradEinsum: the gradient of an operand is the Einsum of gY with the
// other operand onto the operand's indices. Indices of the operand found
// in neither gY nor the other operand were summed away by the forward pass
// alone: they are re-inserted (Unsqueeze) and gY broadcast over them
// (Expand). In Jacobian mode the class axis is one more index, of gY and
// of the result.
func gradEinsum(c *gradCtx) error {
	e, err := readEinsum(&c.nodeCtx)
	if err != nil {
		return err
	}
	switch {
	case e.diagonal:
		return c.errorf("the gradient of Einsum %q is not supported: an index repeats within one operand (a diagonal or trace); write it as a product with an identity matrix and a sum", c.attrString("equation", ""))
	case len(e.in) > 2:
		return c.errorf("the gradient of Einsum with %d operands is not supported (one or two)", len(e.in))
	}
	class := ""
	if c.lead {
		l, ok := e.fresh()
		if !ok {
			return c.errorf("equation uses too many indices for the Jacobian's class axis")
		}
		class = string(l)
	}
	for i, target := range e.in {
		if !c.need[i] {
			continue
		}
		terms, inputs := []string{class + e.out}, []string{c.gy[0]}
		other := ""
		if len(e.in) == 2 {
			other = e.in[1-i]
			terms, inputs = append(terms, other), append(inputs, c.input(1-i))
		}
		var keep []byte
		var missing []int64
		for a := range len(target) {
			if l := target[a]; strings.IndexByte(e.out, l) >= 0 || strings.IndexByte(other, l) >= 0 {
				keep = append(keep, l)
			} else {
				missing = append(missing, int64(a+c.off()))
			}
		}
		eq := strings.Join(terms, ",") + "->" + class + string(keep)
		g := c.op("Einsum", inputs, attrString("equation", eq))
		if len(missing) > 0 {
			g = c.op("Unsqueeze", []string{g, c.gr.ints(missing...)})
			g = c.op("Expand", []string{g, c.op("Shape", []string{c.input(i)})})
		}
		c.setGrad(i, g)
	}
	return nil
}
