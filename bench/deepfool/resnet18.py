#!/usr/bin/python3
"""Writes the ResNet-18 case of bench/run (issue 13 item 5: a model users bring).

torchvision's resnet18(num_classes=10) with seeded random weights (speed
does not need a trained model), in eval mode, for 3x32x32 inputs, to
DIR/resnet18.onnx (torch.onnx.export, opset 13) for `marginaudit audit`
and DIR/resnet18.pt (TorchScript) for `deepfool_torch.py --torchscript`;
N images uniform in [0, 1] (seed 1) to DIR/resnet18.x.npy and the model's
predictions as their labels to DIR/resnet18.labels.npy (int64).

    /usr/bin/python3 bench/deepfool/resnet18.py DIR N
"""

import sys

import numpy as np
import torch
import torchvision


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, n = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(1)
    model = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.onnx.export(model, x[:1], f"{out}/resnet18.onnx", opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
    torch.jit.save(torch.jit.trace(model, x[:1]), f"{out}/resnet18.pt")
    with torch.no_grad():
        pred = model(x).argmax(1)
    np.save(f"{out}/resnet18.x.npy", x.numpy())
    np.save(f"{out}/resnet18.labels.npy", pred.numpy().astype(np.int64))


if __name__ == "__main__":
    main()
