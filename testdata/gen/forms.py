"""How a fixture's model becomes ONNX files, and what the graph holds.

export_bytes is the TorchScript export every fixture goes through (dynamic
batch unless the fixture is a fixed-batch form).  The other external-model
forms are made from the exported bytes the way other tools write files:
external data as onnx.save_model(save_as_external_data=True) writes it, an
unsorted node list as keras2onnx writes it.  The rest reads facts back from a
graph for the README and the checks.
"""
import copy
import io
import os
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper
import torch

import onnx_numpy_ref


def check(cond, msg):
    """Stops the script when a fixture is not what it claims to be."""
    if not cond:
        raise SystemExit(f"CHECK FAILED: {msg}")


def export_bytes(model, x, opset, dynamic=True):
    f = io.BytesIO()
    torch.onnx.export(model, x, f, opset_version=opset, input_names=["input"],
                      output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}} if dynamic else None,
                      do_constant_folding=True)
    return f.getvalue()


def external_data(blob, name):
    """{file name: bytes} of the model saved with onnx.save_model(...,
    save_as_external_data=True, all_tensors_to_one_file=True,
    location=NAME.onnx.data, size_threshold=0, convert_attribute=True):
    every tensor, however small, initializer or Constant attribute, lives in
    NAME.onnx.data beside NAME.onnx.  onnx appends to an existing data file,
    so it is written into a fresh folder."""
    m = onnx.load_from_string(blob)
    with tempfile.TemporaryDirectory() as d:
        onnx.save_model(m, os.path.join(d, name + ".onnx"), save_as_external_data=True,
                        all_tensors_to_one_file=True, location=name + ".onnx.data",
                        size_threshold=0, convert_attribute=True)
        out = {}
        for f in sorted(os.listdir(d)):
            with open(os.path.join(d, f), "rb") as fh:
                out[f] = fh.read()
        return out


def load_files(files, main):
    """Writes files {name: bytes} into a fresh folder and loads main from
    there with its external data (onnx.load), after onnx.checker has checked
    it by path (the form of check_model that follows external data)."""
    with tempfile.TemporaryDirectory() as d:
        for f, b in files.items():
            with open(os.path.join(d, f), "wb") as fh:
                fh.write(b)
        onnx.checker.check_model(os.path.join(d, main))
        return onnx.load(os.path.join(d, main))


def unsorted(blob, seed):
    """The model with its node list in a seeded random order that is not a
    topological order (a valid graph: ONNX asks for sorted nodes, but
    keras2onnx and others write them in any order and onnxruntime sorts)."""
    m = onnx.load_from_string(blob)
    nodes = [copy.deepcopy(n) for n in m.graph.node]
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(len(nodes))
        del m.graph.node[:]
        m.graph.node.extend(nodes[i] for i in perm)
        if not onnx_numpy_ref.is_sorted(m):
            return m.SerializeToString()


def checker_complaint(m):
    """onnx.checker's message for m, or None when it accepts m."""
    try:
        onnx.checker.check_model(m)
    except onnx.checker.ValidationError as e:
        return " ".join(str(e).split())
    return None


# --------------------------------------------------------------------------
# graph facts
# --------------------------------------------------------------------------
def op_types(m):
    return sorted(set(n.op_type for n in m.graph.node))


def producers(m):
    return {o: n for n in m.graph.node for o in n.output}


def computed_by(m, tensor, stop_at=()):
    """The non-Constant nodes that tensor is computed from (transitively,
    not past nodes whose op type is in stop_at), in graph order: the shape
    chains exporters leave unfolded."""
    prod, seen, todo = producers(m), set(), [tensor]
    while todo:
        n = prod.get(todo.pop())
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        if n.op_type not in stop_at:
            todo.extend(n.input)
    return [n for n in m.graph.node if id(n) in seen and n.op_type != "Constant"]


def constant_value(m, tensor):
    """The value of an initializer or Constant node output, or None."""
    for t in m.graph.initializer:
        if t.name == tensor:
            return onnx.numpy_helper.to_array(t)
    n = producers(m).get(tensor)
    if n is not None and n.op_type == "Constant":
        return onnx.numpy_helper.to_array(n.attribute[0].t)
    return None


def has_view_chain(m):
    """Reshape(input, Concat(Unsqueeze(Gather(Shape(input))), ...))."""
    prod = producers(m)
    for n in m.graph.node:
        if n.op_type != "Reshape" or n.input[0] != "input":
            continue
        c = prod.get(n.input[1])
        if c is None or c.op_type != "Concat":
            continue
        for ci in c.input:
            u = prod.get(ci)
            if u is None or u.op_type != "Unsqueeze":
                continue
            g = prod.get(u.input[0])
            if g is None or g.op_type != "Gather":
                continue
            s = prod.get(g.input[0])
            if s is not None and s.op_type == "Shape" and s.input[0] == "input":
                return True
    return False


def input_dims(m):
    """The graph input's dimensions: ints, or names for symbolic ones."""
    return [d.dim_param or d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
