"""Timing helpers shared by the PyTorch peers beside this file (seed_cnn_reference.py,
vgg_bn_reference.py): one definition of how a peer's step is timed, on the CPU or a GPU."""

import time

import torch


def sync(device):
    """Waits for the device's queued work, so a timed step includes it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def use_device(device):
    """On a GPU, lets cuDNN pick its fastest convolution algorithms (the peer at its best)."""
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True


def timed(f, warm, secs):
    """Seconds of each call of `f` after `warm` untimed calls: at least 3, for `secs` seconds."""
    for _ in range(warm):
        f()
    out, t0 = [], time.perf_counter()
    while len(out) < 3 or time.perf_counter() - t0 < secs:
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return out
