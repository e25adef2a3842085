"""The CPU student: a small residual CNN with batch normalisation, for 48x48 faces on two cores.

A 3x3 stem at 48x48, then three stages, each a 2x2 max pool (sides 24, 12, 6), a 3x3 convolution
to the stage's width and basic residual blocks (two 3x3 convolutions, batch norm after each, an
identity shortcut); global average pooling, dropout and one linear layer.

Why this shape for this machine:
- plain 3x3 convolutions: ONNX Runtime's int8 kernels run them several times faster per
  multiply than depthwise ones on this CPU (the served int8-48 net does 35 M multiplies in
  about 0.2 ms a face at batch 32);
- batch norm keeps activations in float32's normal range, so training never slows down on
  denormal numbers as the paper's VGG did here, and folds into the convolutions on export;
- residual blocks train from scratch in a few dozen epochs at a high learning rate. Two choices
  were measured here over the first 100 batches (training accuracy, no augmentation): strided
  convolutions with 1x1 projections and zero-initialised last BN scales (ResNet's defaults) sat at
  26% while a plain CNN reached 37%; pooling first and identity shortcuts reached 39-40%.

Input and output are those of every emotion model the classifier runs: NHWC [batch, 48, 48, 1],
grey as (p / 255 - 0.5) * 2, and the softmax over the seven FER classes (Served in vgg_se.py).
"""
import torch
from torch import nn


class Block(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the input (identity shortcut)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class ResNetS(nn.Module):
    """stem: channels of the 48x48 stem; widths and blocks: per stage (each stage starts by halving the side)."""

    def __init__(self, stem: int = 24, widths=(32, 64, 128), blocks=(1, 2, 2), classes: int = 7, dropout: float = 0.2):
        super().__init__()
        self.spec = {'stem': stem, 'widths': list(widths), 'blocks': list(blocks), 'dropout': dropout}
        layers = [nn.Conv2d(1, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True)]
        cin = stem
        for w, n in zip(widths, blocks):
            layers += [nn.MaxPool2d(2), nn.Conv2d(cin, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            layers += [Block(w) for _ in range(n)]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(cin, classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')

    def logits(self, x):
        """x: NCHW [batch, 1, 48, 48], normalised."""
        return self.head(self.features(x).mean(dim=(2, 3)))

    def forward(self, x):
        return self.logits(x)


def multiplies(net: ResNetS, side: int = 48) -> int:
    """Multiply-accumulates of one face's forward pass through the convolutions and the head."""
    total, hooks = 0, []

    def count(m, _inp, out):
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.shape[2] * out.shape[3] * m.weight.numel()
        elif isinstance(m, nn.Linear):
            total += m.weight.numel()

    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(count))
    was = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 1, side, side))
    net.train(was)
    for h in hooks:
        h.remove()
    return total
