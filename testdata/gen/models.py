"""The PyTorch models of the onnxgrad fixtures (make_fixtures.py's table).

Every builder is called right after torch.manual_seed(weight seed), so the
parameter creation order fixes the weights: twins (same weights, another
export) build the same modules in the same order.  Builders that need more
than PyTorch's default initialisation (BatchNorm statistics, norm affine
parameters, torchvision's zero-initialised heads) draw it from a
torch.Generator seeded by the fixture, never from the global RNG.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

import kinks


def mlp_layers():
    return [nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)]


def make_mlp():
    return nn.Sequential(nn.Flatten(), *mlp_layers())


class MLPView(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(*mlp_layers())   # same creation order as mlp -> same weights

    def forward(self, x):
        return self.body(x.view(x.size(0), -1))


def make_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 7 * 7, 16), nn.ReLU(), nn.Linear(16, 10))


def make_cnn_overlap():
    # 3x16x16 -> conv s2 -> 6x8x8 -> maxpool k3 s2 p1 -> 6x4x4 -> dilated grouped conv -> 6x4x4
    # -> avgpool k2 s2 -> 6x2x2 -> depthwise conv -> 6x2x2 -> 24 -> 10
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, groups=2), nn.Tanh(),
        nn.AvgPool2d(2, stride=2),
        nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.LeakyReLU(0.1),
        nn.Flatten(), nn.Linear(6 * 2 * 2, 10))


class Misc(nn.Module):
    """1x12x12: Conv-Sigmoid, AvgPool(k3 s2 p1, count_include_pad=False,
    ceil_mode=True), Dropout, Flatten, Linear-Tanh, residual h + 0.5*fc2(h),
    clamp(-2, 2), Linear."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)                       # 12 -> 10
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False,
                                 ceil_mode=True)             # 10 -> 6 (5 without ceil_mode)
        self.drop = nn.Dropout(0.5)
        self.fc1 = nn.Linear(4 * 6 * 6, 20)
        self.fc2 = nn.Linear(20, 20)
        self.fc3 = nn.Linear(20, 10)
        with torch.no_grad():                               # make clamp(-2, 2) active somewhere
            self.fc2.weight.mul_(6.0)
            self.fc1.weight.mul_(3.0)

    def forward(self, x):
        h = self.pool(torch.sigmoid(self.conv(x)))
        h = torch.flatten(self.drop(h), 1)
        h = torch.tanh(self.fc1(h))
        h2 = self.fc2(h)
        h = h + 0.5 * h2
        kinks.note_kink("Clip", h, [-2.0, 2.0])
        h = torch.clamp(h, -2, 2)
        return self.fc3(h)


class Misc2(nn.Module):
    """3x8x8: (x - mean) / std with [1,3,1,1] constants, Conv-Tanh, F.pad
    (asymmetric, value 0.5)-Conv-Sigmoid, torch.cat on channels,
    torch.mean(dim=1, keepdim=True), h.sum(dim=3), Linear."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1))
        self.conv_a = nn.Conv2d(3, 4, 3, padding=1)          # 8x8 -> 8x8
        self.conv_b = nn.Conv2d(3, 4, 3)                     # padded 10x10 -> 8x8
        self.fc = nn.Linear(8 * 8, 10)

    def forward(self, x):
        x = (x - self.mean) / self.std
        a = torch.tanh(self.conv_a(x))
        b = torch.sigmoid(self.conv_b(F.pad(x, (1, 1, 2, 0), mode="constant", value=0.5)))
        h = torch.cat([a, b], dim=1)                         # [N, 8, 8, 8]
        m = torch.mean(h, dim=1, keepdim=True)               # [N, 1, 8, 8]
        h = h - 2.0 * m
        s = h.sum(dim=3)                                     # [N, 8, 8]
        return self.fc(torch.flatten(s, 1))


class Misc3(nn.Module):
    """1x8x8: squeeze, transpose, MatMul with a weight parameter, Tanh,
    permute, slice h[:, 2:10], unsqueeze, Conv-Tanh, Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 12) / 8 ** 0.5)
        self.b = nn.Parameter(0.1 * torch.randn(12))
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        h = x.squeeze(1)                                     # [N, 8, 8]
        h = h.transpose(1, 2)
        h = torch.tanh(torch.matmul(h, self.w) + self.b)     # [N, 8, 12]
        h = h.permute(0, 2, 1)                               # [N, 12, 8]
        h = h[:, 2:10]                                       # [N, 8, 8]
        h = h.unsqueeze(1)                                   # [N, 1, 8, 8]
        h = torch.tanh(self.conv(h))
        return self.fc(torch.flatten(h, 1))


def score_head(z, head):
    """The class scores a model outputs from its logits z: "logits" (z),
    "softmax" or "logsoftmax" over the classes."""
    if head == "softmax":
        return torch.softmax(z, dim=1)
    if head == "logsoftmax":
        return torch.log_softmax(z, dim=1)
    assert head == "logits", head
    return z


class SmallMLP(nn.Module):
    """1x8x8 -> Flatten, Linear 64->16, Tanh, Linear 16->10, then score_head."""

    def __init__(self, head):
        super().__init__()
        self.head = head
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)
        with torch.no_grad():
            self.fc2.weight.mul_(4.0)                        # spread the probabilities

    def forward(self, x):
        return score_head(self.fc2(torch.tanh(self.fc1(torch.flatten(x, 1)))), self.head)


class Unsupported(nn.Module):
    """erf-based GELU (Erf) and torch.cumsum (CumSum) on the differentiable path."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x):
        h = F.gelu(self.fc1(torch.flatten(x, 1)))           # approximate="none" -> Erf
        h = torch.cumsum(h, dim=1)
        return self.fc2(h)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, post_bn=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                      nn.BatchNorm2d(cout))
        # a BN after the residual Add cannot be folded into a Conv by the exporter
        self.post_bn = nn.BatchNorm2d(cout) if post_bn else None

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        h = self.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h)) + idt
        if self.post_bn is not None:
            h = self.post_bn(h)
        return self.relu(h)


class ResNetSmall(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2, post_bn=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        h = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(h), 1))


def calibrate_bn(model, shape, seed, passes=8, batch=32):
    """Non-trivial BN: random affine parameters, then running statistics from
    train-mode passes on random [0,1] data (cumulative average)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.reset_running_stats()
                m.momentum = None
        model.train()
        for _ in range(passes):
            model(torch.rand((batch,) + tuple(shape), generator=g))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
    return model.eval()


def make_resnet_small():
    return calibrate_bn(ResNetSmall(), (3, 16, 16), seed=606)


def make_resnet18():
    import torchvision
    return calibrate_bn(torchvision.models.resnet18(num_classes=10), (3, 32, 32), seed=909,
                        passes=4, batch=16)



def randomize_norms(model, seed):
    """Random affine parameters for every LayerNorm / GroupNorm /
    InstanceNorm2d (weights 0.5 + U(0, 1), biases 0.2 N(0, 1)), as
    calibrate_bn does for BatchNorm; the defaults (1, 0) would hide a
    gradient rule that drops scale or bias."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm2d)) and m.weight is not None:
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
    return model


# --------------------------------------------------------------------------
# probability heads and external-model forms of cnn
# --------------------------------------------------------------------------
class SmallCNN(nn.Module):
    """1x28x28 -> Conv(1->4,k5,s2,p2)-ReLU, Conv(4->8,k3,p1)-ReLU-MaxPool(2),
    Flatten, Linear(392->10), then score_head."""

    def __init__(self, head):
        super().__init__()
        self.head = head
        self.body = nn.Sequential(
            nn.Conv2d(1, 4, 5, stride=2, padding=2), nn.ReLU(),
            nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.fc = nn.Linear(8 * 7 * 7, 10)
        with torch.no_grad():
            self.fc.weight.mul_(30.0)                        # p_max ~0.8: peaked, not saturated

    def forward(self, x):
        return score_head(self.fc(self.body(x)), self.head)


class CNNView(nn.Module):
    """cnn (same modules in the same order, so the same weights) flattened
    with x.view(x.size(0), -1): exported at a fixed batch, the Reshape's
    shape constant holds the batch."""

    def __init__(self):
        super().__init__()
        layers = list(make_cnn())
        flat = [i for i, m in enumerate(layers) if isinstance(m, nn.Flatten)][0]
        self.features = nn.Sequential(*layers[:flat])
        self.head = nn.Sequential(*layers[flat + 1:])

    def forward(self, x):
        return self.head(self.features(x).view(x.size(0), -1))


class NHWC(nn.Module):
    """Takes [N, H, W, C] images and hands model.permute(0, 3, 1, 2) of them,
    as models trained on channels-last arrays are exported."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.permute(0, 3, 1, 2))


# --------------------------------------------------------------------------
# torchvision models
# --------------------------------------------------------------------------
def _resnet_narrow_class():
    from torchvision.models.resnet import BasicBlock as TVBasicBlock, ResNet

    class NarrowResNet18(ResNet):
        """torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2]) with stage widths
        w, 2w, 4w, 8w instead of 64, 128, 256, 512.  torchvision hard-codes
        the widths, so after ResNet.__init__ the stem, the four stages (by
        torchvision's own ResNet._make_layer) and fc are rebuilt narrower and
        the convolutions initialised as ResNet.__init__ does; forward is
        torchvision's."""

        def __init__(self, width, num_classes):
            super().__init__(TVBasicBlock, [2, 2, 2, 2], num_classes=num_classes)
            self.inplanes = width
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = self._norm_layer(width)
            self.layer1 = self._make_layer(TVBasicBlock, width, 2)
            self.layer2 = self._make_layer(TVBasicBlock, 2 * width, 2, stride=2)
            self.layer3 = self._make_layer(TVBasicBlock, 4 * width, 2, stride=2)
            self.layer4 = self._make_layer(TVBasicBlock, 8 * width, 2, stride=2)
            self.fc = nn.Linear(8 * width, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    return NarrowResNet18


def make_resnet18_narrow():
    return calibrate_bn(_resnet_narrow_class()(8, 10), (3, 32, 32), seed=919, passes=4, batch=16)


def make_mobilenet_v2():
    import torchvision
    return calibrate_bn(torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10),
                        (3, 32, 32), seed=929, passes=4, batch=16)


def make_mobilenet_v3_small():
    import torchvision
    return calibrate_bn(torchvision.models.mobilenet_v3_small(width_mult=0.25, num_classes=10),
                        (3, 32, 32), seed=939, passes=4, batch=16)


def make_vit():
    """torchvision VisionTransformer, image 32, patch 4, 2 layers, 2 heads,
    hidden 32, MLP 64, 10 classes.  torchvision zero-initialises the head and
    the class token: both are redrawn (head: nn.Linear's default init; class
    token: N(0, 1)), and the LayerNorms get random affine parameters."""
    from torchvision.models import VisionTransformer
    model = VisionTransformer(image_size=32, patch_size=4, num_layers=2, num_heads=2,
                              hidden_dim=32, mlp_dim=64, num_classes=10)
    g = torch.Generator().manual_seed(949)
    with torch.no_grad():
        model.class_token.copy_(torch.randn(model.class_token.shape, generator=g))
    model.heads.head.reset_parameters()
    return randomize_norms(model, seed=950)


def make_convnext():
    """torchvision ConvNeXt with two one-block stages (16 and 32 channels).
    ConvNeXt initialises Conv/Linear weights N(0, 0.02), biases 0 and layer
    scale 1e-6, which makes every residual branch vanish: the weights are
    redrawn with PyTorch's default init, the layer scales U(0.2, 1) and the
    LayerNorms get random affine parameters."""
    from torchvision.models.convnext import CNBlock, CNBlockConfig, ConvNeXt
    model = ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, None, 1)], num_classes=10)
    g = torch.Generator().manual_seed(959)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.reset_parameters()
        elif isinstance(m, CNBlock):
            with torch.no_grad():
                m.layer_scale.copy_(0.2 + 0.8 * torch.rand(m.layer_scale.shape, generator=g))
    return randomize_norms(model, seed=960)


# --------------------------------------------------------------------------
# one small model per op family that onnxgrad refused (issue 9)
# --------------------------------------------------------------------------
class OpLayerNorm(nn.Module):
    """3x8x8 -> Conv(3->8,k3,p1), permute to NHWC, LayerNorm(8) (axis -1),
    permute back, Tanh, LayerNorm([8,8,8], eps=1e-3) (axis -3), Flatten,
    Linear(512->10)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.ln_c = nn.LayerNorm(8)
        self.ln_chw = nn.LayerNorm([8, 8, 8], eps=1e-3)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        h = self.ln_c(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        h = self.ln_chw(torch.tanh(h))
        return self.fc(torch.flatten(h, 1))


def make_op_layernorm():
    return randomize_norms(OpLayerNorm(), seed=971)


class OpResize(nn.Module):
    """3x6x6 -> F.interpolate(nearest, x2), Conv(3->4,k3,s2,p1)-Tanh,
    F.interpolate(bilinear, x2, align_corners=False) and
    (..., align_corners=True), cat, Conv(8->4,k3,s2,p1)-Tanh, Flatten,
    Linear(144->10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(8, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        h = F.interpolate(x, scale_factor=2, mode="nearest")                 # 12x12
        h = torch.tanh(self.conv1(h))                                        # 6x6
        a = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        b = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=True)
        h = torch.tanh(self.conv2(torch.cat([a, b], dim=1)))                 # 6x6
        return self.fc(torch.flatten(h, 1))


class OpConvTranspose(nn.Module):
    """4x4x4 -> ConvTranspose(4->6,k3,s2,p1,output_padding 1)-Tanh (8x8),
    ConvTranspose(6->4,k4,s2,p1,groups 2)-Tanh (16x16), Flatten,
    Linear(1024->10)."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2)
        self.fc = nn.Linear(4 * 16 * 16, 10)

    def forward(self, x):
        h = torch.tanh(self.up2(torch.tanh(self.up1(x))))
        return self.fc(torch.flatten(h, 1))


class OpGroupNorm(nn.Module):
    """3x8x8 -> Conv(3->8,k3,p1), GroupNorm(4 groups, 8), Tanh,
    Conv(8->6,k3,p1), InstanceNorm2d(6, affine), Tanh, Flatten,
    Linear(384->10)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.conv2 = nn.Conv2d(8, 6, 3, padding=1)
        self.inorm = nn.InstanceNorm2d(6, affine=True)
        self.fc = nn.Linear(6 * 8 * 8, 10)

    def forward(self, x):
        h = torch.tanh(self.gn(self.conv1(x)))
        h = torch.tanh(self.inorm(self.conv2(h)))
        return self.fc(torch.flatten(h, 1))


def make_op_groupnorm():
    return randomize_norms(OpGroupNorm(), seed=977)


class OpActivations(nn.Module):
    """3x8x8 -> Conv(3->8,k3,p1)-Hardswish, Conv(8->8,k3,p1)-SELU,
    Conv(8->4,k1)-Hardsigmoid, Flatten, Linear(256->10).  The convolution
    weights are scaled up so that the activations' inputs spread over
    [-6, 6] and cross every kink (HardSwish and HardSigmoid at -3 and 3,
    SELU at 0)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 4, 1)
        self.hardswish, self.selu, self.hardsigmoid = nn.Hardswish(), nn.SELU(), nn.Hardsigmoid()
        self.fc = nn.Linear(4 * 8 * 8, 10)
        with torch.no_grad():
            for c in (self.conv1, self.conv2, self.conv3):
                c.weight.mul_(8.0)

    def forward(self, x):
        h = self.hardswish(self.conv1(x))
        h = self.selu(self.conv2(h))
        h = self.hardsigmoid(self.conv3(h))
        return self.fc(torch.flatten(h, 1))


class OpMinMax(nn.Module):
    """3x8x8 -> a = Conv(3->6,k3,p1)(x), b = Conv(3->6,k3,p1)(x),
    m = torch.maximum(a, b), torch.minimum(a, cap) with a [6,1,1] parameter
    cap (broadcast), cat (12 channels), torch.amax(dim=1, keepdim=True);
    torch.amin(m, dim=(2, 3)) (not over the min: its plateaus at cap are
    ties); Flatten, cat, Linear(70->10)."""

    def __init__(self):
        super().__init__()
        self.conv_a = nn.Conv2d(3, 6, 3, padding=1)
        self.conv_b = nn.Conv2d(3, 6, 3, padding=1)
        self.cap = nn.Parameter(0.2 * torch.randn(6, 1, 1))
        self.fc = nn.Linear(8 * 8 + 6, 10)

    def forward(self, x):
        a, b = self.conv_a(x), self.conv_b(x)
        kinks.note_kink("Max", a - b, [0.0])
        kinks.note_kink("Min", a - self.cap, [0.0])
        m = torch.maximum(a, b)
        h = torch.cat([m, torch.minimum(a, self.cap)], dim=1)
        kinks.note_gap("ReduceMax", h, [1])
        kinks.note_gap("ReduceMin", -m, [2, 3])
        hi = torch.amax(h, dim=1, keepdim=True)
        lo = torch.amin(m, dim=(2, 3))
        return self.fc(torch.cat([torch.flatten(hi, 1), lo], dim=1))


class OpEinsum(nn.Module):
    """3x8x8 -> Tanh(einsum('bchw,oc->bohw', x, W[4,3]) + b), A = flatten(2)
    [N,4,64], Gram einsum('bij,bjk->bik', A, A^T) / 64, cat(flatten(Gram),
    flatten(h)), Linear(272->10)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 3))
        self.b = nn.Parameter(0.1 * torch.randn(4, 1, 1))
        self.fc = nn.Linear(16 + 4 * 8 * 8, 10)

    def forward(self, x):
        h = torch.tanh(torch.einsum("bchw,oc->bohw", x, self.w) + self.b)
        a = torch.flatten(h, 2)
        gram = torch.einsum("bij,bjk->bik", a, a.transpose(1, 2)) / 64.0
        return self.fc(torch.cat([torch.flatten(gram, 1), torch.flatten(h, 1)], dim=1))
