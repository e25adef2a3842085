"""The paper's Stage 2 CNN (Section IV-D), written out: VGG-16's five blocks of 3x3 convolutions
(2, 2, 3, 3, 3 of them, 64 to 512 channels, each block ending in a 2x2 max pool), a single-channel
first convolution, a squeeze-and-excitation module (reduction r = 16) after each block, global
average pooling, FC-512 with ReLU and dropout 0.5, and seven outputs. The one change allowed is a
width multiplier on every channel count (1.0 is the paper's network). No batch normalisation: the
paper names none.

The input is what the classifier feeds every emotion CNN: NHWC [batch, 48, 48, 1], grey scaled as
(p / 255 - 0.5) * 2. The output is the softmax over the seven FER classes, so that the exported
graph is a drop-in emotion model (vision/emotion-cnn.ts).
"""
import torch
from torch import nn

LABELS = ['angry', 'disgust', 'fear', 'happy', 'sad', 'surprise', 'neutral']
BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]


class SqueezeExcite(nn.Module):
    """Channel attention: global average pool, FC down by r, ReLU, FC up, sigmoid, rescale."""

    def __init__(self, channels: int, r: int = 16):
        super().__init__()
        hidden = max(1, channels // r)
        self.down = nn.Linear(channels, hidden)
        self.up = nn.Linear(hidden, channels)

    def forward(self, x):
        s = torch.sigmoid(self.up(torch.relu(self.down(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


class VggSe(nn.Module):
    def __init__(self, width: float = 1.0, classes: int = 7, r: int = 16):
        super().__init__()
        layers, cin = [], 1
        for channels, convs in BLOCKS:
            c = max(8, int(round(channels * width)))
            for _ in range(convs):
                layers += [nn.Conv2d(cin, c, 3, padding=1), nn.ReLU(inplace=True)]
                cin = c
            layers += [SqueezeExcite(c, r), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(cin, 512), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(512, classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
                nn.init.zeros_(m.bias)

    def logits(self, x):
        """x: NCHW [batch, 1, 48, 48], normalised."""
        return self.head(self.features(x).mean(dim=(2, 3)))

    def forward(self, x):
        return self.logits(x)


class Served(nn.Module):
    """The exported graph: NHWC input as the classifier feeds it, softmax out."""

    def __init__(self, net: VggSe):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net.logits(x.permute(0, 3, 1, 2)), dim=1)
