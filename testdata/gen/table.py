"""The fixture table of make_fixtures.py, with each fixture's graph facts.

One dict per fixture:
  name, make (model builder), shape (one input, no batch), opset, seed
  (weights; x is drawn from seed*1000 + k), how (README text);
  optional: n (batch, default 4), large (written only with --large, under
  large/), onnx_only (no x/logits/jac), expect (op types the graph must
  hold), facts (function(model, onnx model) -> README lines, checking what
  it states), and for twins:
  twin     the fixture whose weights (same seed, same module creation order)
           and x (x[:n], NHWC-transposed for layout "nhwc") this one shares;
           its scores must equal the twin's logits mapped by `scores`
  form     "plain" (default), "fixed_batch" (exported without dynamic_axes
           at batch n), "nhwc", "external_data", "unsorted"
  layout   "nchw" (default) or "nhwc"
  scores   "logits" (default), "softmax", "logsoftmax"
"""
import onnx

import models as M
from forms import check, computed_by, constant_value, has_view_chain, op_types, producers

SMALL_CNN = ("Conv(1->4,k5,s2,p2)-ReLU, Conv(4->8,k3,p1)-ReLU-MaxPool(2), Flatten, "
             "Linear(392->10)")
TV_INPUT = "3x32x32 inputs, 10 classes"


# --------------------------------------------------------------------------
# graph facts of single fixtures
# --------------------------------------------------------------------------
def _attrs(n):
    return {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}


def _fmt(v):
    return v.decode() if isinstance(v, bytes) else v


def _nodes(m, op):
    return [n for n in m.graph.node if n.op_type == op]


def mlp_facts(model, m):
    check("Flatten" in op_types(m), "mlp: no Flatten")
    return []


def mlp_view_facts(model, m):
    check(has_view_chain(m), "mlp_view: Shape->Gather->Unsqueeze->Concat->Reshape chain was folded away")
    return ["Shape->Gather->Unsqueeze->Concat->Reshape chain present (not constant-folded: "
            "the batch axis is dynamic)"]


def misc_facts(model, m):
    check("Dropout" not in op_types(m), "misc: Dropout node present")
    ap = _nodes(m, "AveragePool")[0]
    return ["Dropout emits no node",
            "AveragePool attributes: " + ", ".join(f"{k}={v}" for k, v in _attrs(ap).items())]


def misc2_facts(model, m):
    if "ConstantOfShape" not in op_types(m):
        return []
    return ["F.pad's pads are computed by a ConstantOfShape->Concat->Reshape->Slice->"
            "Transpose->Reshape->Cast chain of constants that do_constant_folding "
            "does not fold; the Pad's pads input must be constant-evaluated"]


def resnet_small_facts(model, m):
    check(_nodes(m, "BatchNormalization"), "resnet_small: no BatchNormalization survived export")
    check("GlobalAveragePool" in op_types(m), "resnet_small: no GlobalAveragePool")
    return []


def unsupported_facts(model, m):
    check({"Erf", "CumSum"} <= set(op_types(m)), "unsupported: Erf/CumSum missing")
    return []


def vit_facts(model, m):
    """The class-token chain: class_token.expand(n, -1, -1) with a dynamic n."""
    ex = _nodes(m, "Expand")
    check(len(ex) == 1 and ex[0].input[0] == "class_token", "vit: no Expand of class_token")
    nodes = computed_by(m, ex[0].input[1], stop_at=("Shape",))
    chain = [n.op_type for n in nodes]
    check(chain[:1] == ["Shape"] and {"ConstantOfShape", "Equal", "Where"} <= set(chain),
          f"vit: chain {chain}")
    read = producers(m)[nodes[0].input[0]].op_type
    sl = _nodes(m, "Slice")
    computed = [s for s in sl if any(computed_by(m, i) for i in s.input[1:])]
    out = [f"class token: class_token.expand(n, -1, -1), n = x.shape[0], exports as "
           f"Expand(class_token, shape) with shape = {' -> '.join(chain)}: the first Shape reads "
           f"the patch tokens (a {read} output), s = Concat(n, -1, -1) and "
           "Where(Equal(s, -1 * ones), ones, s) with ones = ConstantOfShape(Shape(s), 1) "
           "turns the -1s into 1s; do_constant_folding leaves the chain because the batch is "
           "dynamic",
           f"nn.MultiheadAttention exports without the fused fast path: in_proj as MatMul + Add, "
           f"q/k/v as {len(computed)} Slices whose ends are computed from Shape (Gather, Add, "
           "Div, Mul), heads by Reshape/Transpose, Div by sqrt(head dim), MatMul, Softmax, "
           "MatMul, out_proj as Gemm",
           f"GELU (exact) as Div, Erf, Add, Mul, Mul ({len(_nodes(m, 'Erf'))} Erf nodes)"]
    ln = _nodes(m, "LayerNormalization")
    if ln:
        out.append(f"{len(ln)} nn.LayerNorm -> LayerNormalization (axis -1, epsilon "
                   f"{_attrs(ln[0]).get('epsilon'):.0e})")
    else:
        out.append(f"nn.LayerNorm -> ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div, Mul, Add "
                   f"({len(_nodes(m, 'Sqrt'))} times)")
    return out


def convnext_facts(model, m):
    ln = _nodes(m, "LayerNormalization")
    check(len(ln) == 5, f"convnext: {len(ln)} LayerNormalization")
    return [f"{len(ln)} LayerNorm/LayerNorm2d -> LayerNormalization (axis -1, epsilon 1e-6), "
            "LayerNorm2d between Transpose(0,2,3,1) and Transpose(0,3,1,2)",
            "layer scale as Mul by a [C,1,1] initializer, residual as Add; StochasticDepth "
            "(eval) emits no node"]


def mobilenet_v2_facts(model, m):
    clips = _nodes(m, "Clip")
    bounds = {tuple(float(constant_value(m, i)) for i in c.input[1:]) for c in clips}
    check(bounds == {(0.0, 6.0)}, f"mobilenet_v2: Clip bounds {bounds}")
    return [f"ReLU6 -> Clip(min 0, max 6) ({len(clips)} nodes)"]


def resize_facts(model, m):
    out = []
    for n in _nodes(m, "Resize"):
        a = _attrs(n)
        sc = constant_value(m, n.input[2]) if len(n.input) > 2 and n.input[2] else None
        check(sc is not None, "op_resize: Resize scales are not a constant")
        out.append(f"Resize mode={_fmt(a['mode'])}, coordinate_transformation_mode="
                   f"{_fmt(a['coordinate_transformation_mode'])}, nearest_mode="
                   f"{_fmt(a['nearest_mode'])}, scales={sc.tolist()} (roi empty)")
    return out + ["bilinear with align_corners=False exports as half_pixel (not "
                  "pytorch_half_pixel): the same for outputs longer than 1"]


def groupnorm_facts(model, m):
    inn = _nodes(m, "InstanceNormalization")
    check(len(inn) == 2, "op_groupnorm: want 2 InstanceNormalization")
    shape = constant_value(m, _nodes(m, "Reshape")[0].input[1])
    return [f"GroupNorm(4, 8) -> Reshape(x, {shape.tolist()}) -> InstanceNormalization (constant "
            "scale 1, bias 0 per group) -> Reshape(Shape(x)) -> Mul(weight [8,1,1]) -> "
            "Add(bias [8,1,1])",
            "InstanceNorm2d(affine) -> InstanceNormalization with its weight and bias"]


def convtranspose_facts(model, m):
    return ["ConvTranspose attributes: " + "; ".join(
        ", ".join(f"{k}={v}" for k, v in _attrs(n).items()) for n in _nodes(m, "ConvTranspose"))]


def minmax_facts(model, m):
    return [f"{n.op_type} attributes: " + ", ".join(f"{k}={v}" for k, v in _attrs(n).items())
            for n in _nodes(m, "ReduceMax") + _nodes(m, "ReduceMin")] + [
        "torch.maximum/minimum -> Max/Min with two inputs (Min's second a [6,1,1] initializer)"]


def einsum_facts(model, m):
    return ["Einsum equations: " + ", ".join(_fmt(_attrs(n)["equation"]) for n in _nodes(m, "Einsum"))]


# --------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------
FIXTURES = [
    dict(name="mlp", make=M.make_mlp, shape=(1, 28, 28), opset=13, seed=101, facts=mlp_facts,
         how="nn.Sequential(Flatten, Linear 784->32, ReLU, Linear 32->32, ReLU, Linear 32->10)"),
    dict(name="mlp_view", make=M.MLPView, shape=(1, 28, 28), opset=13, twin="mlp",
         facts=mlp_view_facts,
         how="as mlp (same weights and x) but flattened with x.view(x.size(0), -1)"),
    dict(name="cnn", make=M.make_cnn, shape=(1, 28, 28), opset=13, seed=303,
         how="Conv(1->4,k3,p1)-ReLU-MaxPool(2), Conv(4->8,k3,p1)-ReLU-MaxPool(2), Flatten, "
             "Linear(392->16)-ReLU-Linear(16->10)"),
    dict(name="cnn_opset17", make=M.make_cnn, shape=(1, 28, 28), opset=17, twin="cnn",
         how="cnn (same weights and x) exported at opset 17"),
    dict(name="cnn_fixed1", make=M.CNNView, shape=(1, 28, 28), opset=13, twin="cnn", n=1,
         form="fixed_batch",
         how="cnn (same weights; x = cnn's first image) flattened with x.view(x.size(0), -1) "
             "and exported without dynamic_axes at batch 1"),
    dict(name="cnn_fixed4", make=M.CNNView, shape=(1, 28, 28), opset=13, twin="cnn",
         form="fixed_batch",
         how="as cnn_fixed1 at batch 4 (x = cnn's x)"),
    dict(name="cnn_nhwc", make=lambda: M.NHWC(M.make_cnn()), shape=(28, 28, 1), opset=13,
         twin="cnn", form="nhwc", layout="nhwc",
         how="cnn (same weights) behind x.permute(0, 3, 1, 2): input [N,28,28,1], x = cnn's x "
             "in NHWC, Jacobian [N,K,28,28,1]"),
    dict(name="cnn_external", make=M.make_cnn, shape=(1, 28, 28), opset=13, twin="cnn",
         form="external_data",
         how="cnn (same export, weights and x) saved with onnx's save_as_external_data: every "
             "tensor in cnn_external.onnx.data beside cnn_external.onnx"),
    dict(name="cnn_unsorted", make=M.make_cnn, shape=(1, 28, 28), opset=13, twin="cnn",
         form="unsorted",
         how="cnn (same export, weights and x) with its node list in a seeded random, "
             "not topological, order (as keras2onnx writes graphs)"),
    dict(name="cnn_overlap", make=M.make_cnn_overlap, shape=(3, 16, 16), opset=13, seed=404,
         how="Conv(3->6,k3,s2,p1)-ReLU, MaxPool(k3,s2,p1), Conv(6->6,k3,p2,dil2,groups2)-Tanh, "
             "AvgPool(k2,s2), depthwise Conv(6->6,g6,k3,p1)-LeakyReLU(0.1), Flatten, Linear(24->10)"),
    dict(name="misc", make=M.Misc, shape=(1, 12, 12), opset=13, seed=505, facts=misc_facts,
         how="Conv(1->4,k3)-Sigmoid, AvgPool(k3,s2,p1,count_include_pad=False,ceil_mode=True), "
             "Dropout(0.5), Flatten, Linear(144->20)-Tanh, h + 0.5*Linear(20->20)(h), "
             "clamp(-2,2), Linear(20->10)"),
    dict(name="misc2", make=M.Misc2, shape=(3, 8, 8), opset=13, seed=515, facts=misc2_facts,
         how="(x-mean)/std [1,3,1,1]; Conv(3->4,k3,p1)-Tanh; F.pad(x,(1,1,2,0),value=0.5)-"
             "Conv(3->4,k3)-Sigmoid; cat(dim=1); h - 2*mean(h,dim=1,keepdim=True); "
             "sum(dim=3); Flatten; Linear(64->10)"),
    dict(name="misc3", make=M.Misc3, shape=(1, 8, 8), opset=13, seed=525,
         how="squeeze(1), transpose(1,2), tanh(matmul(h, W[8,12]) + b), permute(0,2,1), "
             "h[:, 2:10], unsqueeze(1), Conv(1->3,k3,p1)-Tanh, Flatten, Linear(192->10)"),
    dict(name="misc_logits", make=lambda: M.SmallMLP("logits"), shape=(1, 8, 8), opset=13,
         seed=535, how="Flatten, Linear(64->16)-Tanh-Linear(16->10): the logits z of "
                       "misc_softmax and misc_logsoftmax"),
    dict(name="misc_softmax", make=lambda: M.SmallMLP("softmax"), shape=(1, 8, 8), opset=13,
         twin="misc_logits", scores="softmax",
         how="misc_logits (same weights and x), then torch.softmax(dim=1): outputs are "
             "probabilities"),
    dict(name="misc_logsoftmax", make=lambda: M.SmallMLP("logsoftmax"), shape=(1, 8, 8),
         opset=13, twin="misc_logits", scores="logsoftmax",
         how="misc_logits (same weights and x), then torch.log_softmax(dim=1)"),
    dict(name="cnn_small", make=lambda: M.SmallCNN("logits"), shape=(1, 28, 28), opset=13,
         seed=545, how=SMALL_CNN + ": the logits of cnn_small_softmax and cnn_small_logsoftmax"),
    dict(name="cnn_small_softmax", make=lambda: M.SmallCNN("softmax"), shape=(1, 28, 28),
         opset=13, twin="cnn_small", scores="softmax", expect=["Softmax"],
         how="cnn_small (same weights and x), then torch.softmax(dim=1)"),
    dict(name="cnn_small_logsoftmax", make=lambda: M.SmallCNN("logsoftmax"), shape=(1, 28, 28),
         opset=13, twin="cnn_small", scores="logsoftmax", expect=["LogSoftmax"],
         how="cnn_small (same weights and x), then torch.log_softmax(dim=1)"),
    dict(name="resnet_small", make=M.make_resnet_small, shape=(3, 16, 16), opset=13, seed=606,
         facts=resnet_small_facts,
         how="stem Conv(3->8,k3,p1)-BN-ReLU; BasicBlock(8->8); BasicBlock(8->16, stride 2, "
             "1x1 conv+BN shortcut) with a BN after the residual Add; ReLU; "
             "AdaptiveAvgPool2d(1); Flatten; Linear(16->10). BN stats from 8 train-mode "
             "passes on random data, random affine"),
    dict(name="resnet18_narrow", make=M.make_resnet18_narrow, shape=(3, 32, 32), opset=13,
         seed=919, n=2, expect=["MaxPool", "GlobalAveragePool", "Add"],
         how="torchvision ResNet(BasicBlock, [2, 2, 2, 2]) - resnet18's layout, forward and "
             "_make_layer - with stage widths 8, 16, 32, 64 instead of 64..512 (stem, stages "
             "and fc rebuilt narrower after ResNet.__init__, convolutions initialised as "
             "torchvision does), random BN affine, BN stats from 4 train-mode passes; "
             + TV_INPUT),
    dict(name="mobilenet_v2", make=M.make_mobilenet_v2, shape=(3, 32, 32), opset=13, seed=929,
         n=2, expect=["Clip", "GlobalAveragePool"], facts=mobilenet_v2_facts,
         how="torchvision mobilenet_v2(width_mult=0.25, num_classes=10), torchvision's init, "
             "random BN affine, BN stats from 4 train-mode passes; " + TV_INPUT),
    dict(name="mobilenet_v3_small", make=M.make_mobilenet_v3_small, shape=(3, 32, 32), opset=14,
         seed=939, n=2, expect=["HardSwish", "HardSigmoid", "Mul", "Relu"],
         how="torchvision mobilenet_v3_small(width_mult=0.25, num_classes=10), torchvision's "
             "init, random BN affine, BN stats from 4 train-mode passes; exported at opset 14 "
             "(PyTorch's default opset, where Hardswish is HardSwish); squeeze-excitation "
             "blocks are GlobalAveragePool-Conv-Relu-Conv-HardSigmoid-Mul; " + TV_INPUT),
    dict(name="vit_opset13", make=M.make_vit, shape=(3, 32, 32), opset=13, seed=949, n=2,
         expect=["ConstantOfShape", "Equal", "Where", "Expand", "Erf", "Softmax"],
         facts=vit_facts,
         how="torchvision VisionTransformer(image_size=32, patch_size=4, num_layers=2, "
             "num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10); head and class token "
             "redrawn (torchvision zero-initialises both), random LayerNorm affine; "
             "exported at opset 13 with a dynamic batch"),
    dict(name="vit_opset17", make=M.make_vit, shape=(3, 32, 32), opset=17, twin="vit_opset13",
         n=2, expect=["LayerNormalization", "ConstantOfShape", "Equal", "Where", "Expand"],
         facts=vit_facts,
         how="vit_opset13 (same weights and x) exported at opset 17"),
    dict(name="vit_fixed2", make=M.make_vit, shape=(3, 32, 32), opset=13, twin="vit_opset13",
         n=2, form="fixed_batch",
         how="vit_opset13 (same weights and x) exported without dynamic_axes at batch 2: "
             "the batch is folded into Reshape constants and the class token's Expand"),
    dict(name="convnext_mini", make=M.make_convnext, shape=(3, 32, 32), opset=17, seed=959, n=2,
         expect=["LayerNormalization", "Erf", "Transpose"], facts=convnext_facts,
         how="torchvision ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], "
             "num_classes=10): stem Conv(3->16,k4,s4)+LayerNorm2d; CNBlock(16) = depthwise "
             "Conv 7x7, permute, LayerNorm, Linear(16->64), GELU, Linear(64->16), layer scale, "
             "permute, residual; LayerNorm2d + Conv(16->32,k2,s2); CNBlock(32); "
             "AdaptiveAvgPool, LayerNorm2d, Flatten, Linear(32->10). Weights redrawn with "
             "PyTorch's default init, layer scales U(0.2, 1), random LayerNorm affine; "
             + TV_INPUT),
    dict(name="op_layernorm", make=M.make_op_layernorm, shape=(3, 8, 8), opset=17, seed=971,
         expect=["LayerNormalization"], how=M.OpLayerNorm.__doc__),
    dict(name="op_resize", make=M.OpResize, shape=(3, 6, 6), opset=13, seed=973,
         expect=["Resize"], facts=resize_facts, how=M.OpResize.__doc__),
    dict(name="op_convtranspose", make=M.OpConvTranspose, shape=(4, 4, 4), opset=13, seed=975,
         expect=["ConvTranspose"], facts=convtranspose_facts, how=M.OpConvTranspose.__doc__),
    dict(name="op_groupnorm", make=M.make_op_groupnorm, shape=(3, 8, 8), opset=13, seed=977,
         expect=["InstanceNormalization"], facts=groupnorm_facts, how=M.OpGroupNorm.__doc__),
    dict(name="op_activations", make=M.OpActivations, shape=(3, 8, 8), opset=14, seed=979,
         expect=["HardSwish", "Selu", "HardSigmoid"], how=M.OpActivations.__doc__),
    dict(name="op_minmax", make=M.OpMinMax, shape=(3, 8, 8), opset=13, seed=981,
         expect=["Max", "Min", "ReduceMax", "ReduceMin"], facts=minmax_facts,
         how=M.OpMinMax.__doc__),
    dict(name="op_einsum", make=M.OpEinsum, shape=(3, 8, 8), opset=13, seed=983,
         expect=["Einsum"], facts=einsum_facts, how=M.OpEinsum.__doc__),
    dict(name="unsupported", make=M.Unsupported, shape=(1, 8, 8), opset=13, seed=707,
         onnx_only=True, facts=unsupported_facts,
         how="Flatten, Linear(64->16), F.gelu (exact, Erf), torch.cumsum(dim=1), Linear(16->10); "
             ".onnx only"),
    dict(name="resnet18", make=M.make_resnet18, shape=(3, 32, 32), opset=13, seed=909, n=2,
         large=True,
         how="torchvision resnet18(num_classes=10), random init (seed 909), random BN affine, "
             "BN stats from 4 train-mode passes on random data; written only with --large"),
]
