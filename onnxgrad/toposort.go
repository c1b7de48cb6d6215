package onnxgrad

import (
	"container/heap"
	"fmt"

	"github.com/marginaudit/marginaudit/onnxgrad/onnxpb"
)

// sortNodes puts g's nodes in topological order when they are not in it
// already: a node comes after the nodes producing its inputs (and the
// outer-scope names its subgraphs use). Among nodes that are ready at the
// same time the file's order is kept, so a sorted graph is left as it is.
// Inputs that no node produces are left to Validate (graph inputs,
// initializers, or undefined names it reports). A cycle is a FormatError
// naming a node on it. name is the model's file name, for errors.
func sortNodes(g *onnxpb.GraphProto, name string) error {
	nodes := g.GetNode()
	producer := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.GetOutput() {
			if _, twice := producer[o]; twice {
				return nil // Validate names the tensor defined twice
			}
			if o != "" {
				producer[o] = i
			}
		}
	}
	deps := make([][]int, len(nodes)) // deps[i]: nodes that consume node i's outputs
	waiting := make([]int, len(nodes))
	sorted := true
	for i, n := range nodes {
		seen := map[int]bool{}
		for _, in := range nodeUses(n) {
			p, ok := producer[in]
			if !ok || seen[p] || p == i {
				continue
			}
			seen[p] = true
			deps[p] = append(deps[p], i)
			waiting[i]++
			sorted = sorted && p < i
		}
	}
	if sorted {
		return nil
	}
	ready := &intHeap{}
	for i := range nodes {
		if waiting[i] == 0 {
			heap.Push(ready, i)
		}
	}
	order := make([]*onnxpb.NodeProto, 0, len(nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		order = append(order, nodes[i])
		for _, j := range deps[i] {
			if waiting[j]--; waiting[j] == 0 {
				heap.Push(ready, j)
			}
		}
	}
	if len(order) < len(nodes) {
		for i, w := range waiting {
			if w > 0 {
				return &FormatError{File: name, Field: fmt.Sprintf("graph.node[%d] %q (%s)", i, nodes[i].GetName(), nodes[i].GetOpType()), Msg: "is on a cycle: its inputs depend on its own outputs"}
			}
		}
	}
	g.Node = order
	return nil
}

// nodeUses lists the tensors n reads: its inputs, and the names its
// subgraphs (If, Loop, Scan bodies) take from the enclosing scope.
func nodeUses(n *onnxpb.NodeProto) []string {
	uses := append([]string{}, n.GetInput()...)
	for _, a := range n.GetAttribute() {
		if sg := a.GetG(); sg != nil {
			uses = append(uses, outerNames(sg)...)
		}
		for _, sg := range a.GetGraphs() {
			uses = append(uses, outerNames(sg)...)
		}
	}
	return uses
}

// outerNames lists the names g's nodes read that g does not define itself.
func outerNames(g *onnxpb.GraphProto) []string {
	defined := map[string]bool{}
	for _, vi := range g.GetInput() {
		defined[vi.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		defined[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			defined[o] = true
		}
	}
	var out []string
	for _, n := range g.GetNode() {
		for _, in := range nodeUses(n) {
			if in != "" && !defined[in] {
				out = append(out, in)
			}
		}
	}
	return out
}

// intHeap is a min-heap of node indices.
type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
