# seed_cnn_reference.py: the seed CNN's PyTorch peer for `cargo xtask bench`.
#
# The seed experiment (the "CNN and/or SVM" FER2013 notebook, described in
# docs/seed-experiment.md) in PyTorch: its pandas loader, its torchvision augmentation, its CNN
# layer for layer under the same state_dict names as fer-model's `SeedCnn`, and its recipe.
# `cargo xtask bench ingest`, `bench augment` and `bench train-step` (seed-cnn) run it to print
# PyTorch's figures beside ours, measured in the same run; `fer-model`'s `parity` example is
# compared with its `logits` sub-command. A measuring tool, not part of the project: nothing
# in the workspace imports it, and its figures are never asserted in tests.
#
# It runs under the Python that `cargo xtask bench` is given by `--python` or
# $FER_BENCH_PYTHON; set-up below. Unlike the notebook, `train` and `logits` subtract the
# Training per-pixel mean from every split (as fer's normaliser does), not from Training alone.

"""PyTorch reference for the seed experiment, for side-by-side figures on the same machine.

Set-up (a venv is best; torch is large):
    python3 -m venv ~/.venvs/torchref && ~/.venvs/torchref/bin/pip install torch torchvision pandas safetensors

Sub-commands (all print one JSON object on the last line of stdout):
    speed    [--batches 32,128,256] [--threads 2] [--secs 8]
             training-step and inference images/s of the seed CNN on random input, batch-1 latency
    ingest   --data fer2013.csv[.gz]
             seconds to load the CSV into arrays, the seed's way (pandas + a Python loop) and a
             vectorised pandas/numpy way
    augment  --data fer2013.csv[.gz] [--n 5000]
             images/s of the seed's torchvision augmentation (flip, rotation 6 deg, ColorJitter())
             applied one image at a time, as a DataLoader with num_workers=0 does
    train    --data fer2013.csv[.gz] [--epochs 3] [--threads 2] [--no-augment] [--seed 0]
             the seed's recipe (mean-centering, Adadelta lr 0.1 rho 0.95 eps 1e-8, batch 128,
             NLL), with PublicTest and PrivateTest accuracy and wall time per epoch
    logits   --weights model.safetensors --data fer2013.csv[.gz] [--split PrivateTest] [--n 16]
             loads a state dict saved by another implementation into the seed CNN
             (load_state_dict strict=True) and prints log-probabilities for the first n images
             of the split; input = raw pixels minus the per-pixel mean of the Training split

The seed CNN's parameter names are PyTorch's state_dict names: layer1.0.weight, layer1.0.bias,
layer1.1.weight (PReLU), layer2.1.*, layer2.2.weight, layer3.0.*, layer3.1.weight, layer4.1.*,
layer4.2.weight, layer5.1.*, layer5.2.weight, fc1.*, prelu.weight, fc2.*, fc3.*.
"""
import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_timing import sync, timed, use_device


class SeedCNN(nn.Module):
    """The seed notebook's CNN, layer for layer."""

    def __init__(self, num_classes=7):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(1, 64, 5), nn.PReLU(), nn.ZeroPad2d(2), nn.MaxPool2d(5, 2))
        self.layer2 = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(64, 64, 3), nn.PReLU(), nn.ZeroPad2d(1))
        self.layer3 = nn.Sequential(nn.Conv2d(64, 128, 3), nn.PReLU(), nn.AvgPool2d(3, 2))
        self.layer4 = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(128, 128, 3), nn.PReLU())
        self.layer5 = nn.Sequential(nn.ZeroPad2d(1), nn.Conv2d(128, 128, 3), nn.PReLU(), nn.ZeroPad2d(1),
                                    nn.AvgPool2d(3, 2))
        self.fc1 = nn.Linear(3200, 1024)
        self.prelu = nn.PReLU()
        self.dropout = nn.Dropout(0.2)
        self.fc2 = nn.Linear(1024, 1024)
        self.fc3 = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.layer5(self.layer4(self.layer3(self.layer2(self.layer1(x)))))
        x = x.reshape(x.size(0), -1)
        x = self.dropout(self.prelu(self.fc1(x)))
        x = self.dropout(self.prelu(self.fc2(x)))
        return F.log_softmax(self.fc3(x), dim=1)


def load_csv(path):
    import pandas as pd
    return pd.read_csv(path)


def arrays(df):
    x = np.array([np.asarray(p.split(), dtype=np.uint8) for p in df["pixels"]]).reshape(-1, 1, 48, 48)
    y = df["emotion"].to_numpy(dtype=np.int64)
    u = df["Usage"].to_numpy()
    return {s: (x[u == s], y[u == s]) for s in ("Training", "PublicTest", "PrivateTest")}


def cmd_speed(a):
    torch.set_num_threads(a.threads)
    use_device(a.device)
    torch.manual_seed(0)
    net = SeedCNN().to(a.device)
    opt = torch.optim.Adadelta(net.parameters(), lr=0.1, rho=0.95, eps=1e-8)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device, "batches": {}}
    for n in [int(b) for b in a.batches.split(",")]:
        x, y = torch.rand(n, 1, 48, 48, device=a.device), torch.randint(0, 7, (n,), device=a.device)
        net.eval()

        def infer():
            with torch.inference_mode():
                net(x).sum().item()

        net.train()

        def step():
            opt.zero_grad(set_to_none=True)
            F.nll_loss(net(x), y).backward()
            opt.step()
            sync(a.device)

        ti = statistics.median(timed(infer, 3, a.secs))
        net.train()
        tt = statistics.median(timed(step, 2, a.secs))
        res["batches"][n] = {"infer_img_s": n / ti, "train_img_s": n / tt}
        print(f"batch {n:4}: inference {n / ti:8.1f} img/s | train step {n / tt:7.1f} img/s", flush=True)
    net.eval()
    x1 = torch.rand(1, 1, 48, 48, device=a.device)

    def one():
        with torch.inference_mode():
            net(x1).tolist()

    lat = statistics.median(timed(one, 20, min(a.secs, 5.0)))
    res["batch1_latency_ms"] = lat * 1e3
    print(json.dumps(res))


def cmd_ingest(a):
    import pandas as pd
    t0 = time.perf_counter()
    df = pd.read_csv(a.data)
    splits = {"Training": ([], []), "PublicTest": ([], []), "PrivateTest": ([], [])}
    for row in df.values:  # the seed's Data class, row by row
        pixels = np.array([int(i) for i in row[1].split(" ")]).reshape((1, 48, 48))
        xs, ys = splits[row[2]]
        xs.append(pixels)
        ys.append(int(row[0]))
    seed_way = {k: (np.array(v[0]), np.array(v[1], dtype=np.int64)) for k, v in splits.items()}
    t1 = time.perf_counter()
    fast = arrays(pd.read_csv(a.data))
    t2 = time.perf_counter()
    assert all(len(seed_way[k][1]) == len(fast[k][1]) for k in fast)
    print(json.dumps({"rows": int(len(df)), "seed_way_s": t1 - t0, "vectorised_s": t2 - t1}))


def cmd_augment(a):
    from torchvision import transforms
    torch.set_num_threads(1)
    df = load_csv(a.data).head(a.n)
    x = torch.from_numpy(arrays(df)["Training"][0])
    pre = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.RandomRotation(6),
                              transforms.ColorJitter()])
    t0 = time.perf_counter()
    for i in range(len(x)):
        pre(x[i])
    dt = time.perf_counter() - t0
    print(json.dumps({"images": len(x), "seconds": dt, "img_s": len(x) / dt}))


def evaluate(net, x, y, bs=512):
    net.eval()
    correct, loss = 0, 0.0
    with torch.inference_mode():
        for i in range(0, len(x), bs):
            out = net(x[i:i + bs])
            loss += F.nll_loss(out, y[i:i + bs], reduction="sum").item()
            correct += (out.argmax(1) == y[i:i + bs]).sum().item()
    return correct / len(x), loss / len(x)


def cmd_train(a):
    from torchvision import transforms
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = arrays(load_csv(a.data))
    mean = d["Training"][0].astype(np.float64).mean(axis=0)
    t = {k: (torch.from_numpy((v[0] - mean).astype(np.float32)), torch.from_numpy(v[1])) for k, v in d.items()}
    xtr, ytr = t["Training"]
    pre = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.RandomRotation(6), transforms.ColorJitter()])
    net = SeedCNN()
    opt = torch.optim.Adadelta(net.parameters(), lr=0.1, rho=0.95, eps=1e-8)
    hist = []
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(xtr))
        run = 0.0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            xb = xtr[idx]
            if not a.no_augment:
                xb = torch.stack([pre(img) for img in xb])
            opt.zero_grad(set_to_none=True)
            loss = F.nll_loss(net(xb), ytr[idx])
            loss.backward()
            opt.step()
            run += loss.item()
        t1 = time.perf_counter()
        pub = evaluate(net, *t["PublicTest"])
        priv = evaluate(net, *t["PrivateTest"])
        t2 = time.perf_counter()
        row = {"epoch": epoch, "train_loss_sum": run, "public_acc": pub[0], "private_acc": priv[0],
               "train_s": t1 - t0, "eval_s": t2 - t1}
        hist.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"epochs": hist}))


def cmd_logits(a):
    from safetensors.torch import load_file
    net = SeedCNN()
    net.load_state_dict(load_file(a.weights), strict=True)
    net.eval()
    d = arrays(load_csv(a.data))
    mean = d["Training"][0].astype(np.float64).mean(axis=0)
    x = torch.from_numpy((d[a.split][0][: a.n] - mean).astype(np.float32))
    with torch.inference_mode():
        out = net(x)
    print(json.dumps({"split": a.split, "n": a.n, "log_probs": out.tolist()}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--batches", default="32,128,256")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--secs", type=float, default=8.0)
    s.add_argument("--device", default="cpu", help="cpu or cuda (timings wait for the GPU to finish)")
    for name in ("ingest", "augment", "train", "logits"):
        q = sub.add_parser(name)
        q.add_argument("--data", required=True)
        if name == "augment":
            q.add_argument("--n", type=int, default=5000)
        if name == "train":
            q.add_argument("--epochs", type=int, default=3)
            q.add_argument("--threads", type=int, default=2)
            q.add_argument("--no-augment", action="store_true")
            q.add_argument("--seed", type=int, default=0)
        if name == "logits":
            q.add_argument("--weights", required=True)
            q.add_argument("--split", default="PrivateTest")
            q.add_argument("--n", type=int, default=16)
    a = p.parse_args()
    {"speed": cmd_speed, "ingest": cmd_ingest, "augment": cmd_augment, "train": cmd_train,
     "logits": cmd_logits}[a.cmd](a)


if __name__ == "__main__":
    main()
