"""Writes onet_reference.json: facenet-pytorch's O-Net (the network fer-detect embeds) on three
grey 48x48 inputs defined by formula, repeated over R, G and B as MTCNN takes colour.

    python onet_reference.py   # needs torch and facenet-pytorch 2.6.0
"""
import json
import math

import torch
from facenet_pytorch.models.mtcnn import ONet


def pattern(n, y, x):
    """Grey level in 0..255 of input n at row y, column x (the Rust test computes the same)."""
    if n == 0:
        return (x * 7 + y * 13) % 256
    if n == 1:
        return int(127.5 + 127.5 * math.sin(x / 5.0) * math.cos(y / 7.0))
    # A face-like card: dark eyes, a bright mouth, a horizontal ramp.
    eye = lambda cx, cy: (x - cx) ** 2 + (y - cy) ** 2 < 9
    if eye(17, 19) or eye(31, 19):
        return 20
    if 18 <= x < 30 and 32 <= y < 35:
        return 230
    return 70 + 3 * x


net = ONet(pretrained=True).eval()
grey = torch.tensor(
    [[[pattern(n, y, x) for x in range(48)] for y in range(48)] for n in range(3)],
    dtype=torch.float32,
)
x = ((grey - 127.5) * 0.0078125).unsqueeze(1).repeat(1, 3, 1, 1)
with torch.no_grad():
    _, points, probability = net(x)
json.dump(
    {"probability": probability.tolist(), "points": points.tolist()},
    open("onet_reference.json", "w"),
    indent=1,
)
