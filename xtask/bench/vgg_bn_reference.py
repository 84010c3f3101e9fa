"""PyTorch twin of fer-model's vgg-bn network, for figures measured beside ours.

The module tree matches fer-model's parameter names exactly (`features.0.weight`,
`features.1.running_mean`, ..., `classifier.4.bias`), so a run's safetensors loads here with
`strict=True`. A measuring tool, like seed_cnn_reference.py beside it, not part of the
project; `cargo xtask bench train-step --architecture vgg-bn` runs `speed`.

  speed   training step and inference images/s (Adadelta, as our bench, or with --recipe cpu
          the cpu profile's SGD + weight average), batch-1 latency
  logits  a run's weights, loaded strictly: log-probabilities of the first n images of a split,
          with the run's own normaliser (per-pixel mean, then scale); no test-time flip

Each prints one JSON object on its last line.
"""

import argparse
import copy
import json
import statistics

import torch
import torch.nn as nn
import torch.nn.functional as F

from torch_timing import sync, timed, use_device


class VggBn(nn.Module):
    def __init__(self, width=32, dropout=0.2, num_classes=7):
        super().__init__()
        layers, inputs = [], 1
        for stage in range(4):
            outputs = width << stage
            for _ in range(2):
                layers += [nn.Conv2d(inputs, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs), nn.ReLU(inplace=True)]
                inputs = outputs
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(inputs * 9, 4 * inputs),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4 * inputs, num_classes),
        )

    def forward(self, x):
        x = self.features(x).flatten(1)
        return F.log_softmax(self.classifier(x), dim=1)


def cmd_speed(a):
    torch.set_num_threads(a.threads)
    use_device(a.device)
    torch.manual_seed(0)
    net = VggBn(a.width, a.dropout).to(a.device)
    average = None
    if a.recipe == "cpu":
        # The cpu profile's optimizer, then its weight average (in place, one fused call).
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
        ema = copy.deepcopy(net)
        pairs = [(e, m) for e, m in zip(ema.state_dict().values(), net.state_dict().values()) if e.dtype.is_floating_point]
        average = ([e for e, _ in pairs], [m for _, m in pairs])
    else:
        opt = torch.optim.Adadelta(net.parameters(), lr=0.1, rho=0.95, eps=1e-8)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device, "width": a.width, "batches": {}}
    for n in [int(b) for b in a.batches.split(",")]:
        x, y = torch.rand(n, 1, 48, 48, device=a.device), torch.randint(0, 7, (n,), device=a.device)
        net.eval()

        def infer():
            with torch.inference_mode():
                net(x).sum().item()

        def step():
            opt.zero_grad(set_to_none=True)
            F.nll_loss(net(x), y).backward()
            opt.step()
            if average is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(average[0], average[1], 1.0 - 0.998)
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

    res["batch1_latency_ms"] = statistics.median(timed(one, 20, min(a.secs, 5.0))) * 1e3
    print(json.dumps(res))


def cmd_logits(a):
    import gzip

    import numpy as np
    from safetensors.torch import load_file

    config = json.load(open(f"{a.run}/config.json"))["model"]
    norm = json.load(open(f"{a.run}/normalizer.json"))
    net = VggBn(config.get("width", 32), config.get("dropout", 0.2))
    net.load_state_dict(load_file(f"{a.run}/best.safetensors"), strict=True)
    net.eval()
    opener = gzip.open if a.data.endswith(".gz") else open
    rows, pixels = [], []
    with opener(a.data, "rt") as f:
        next(f)
        for i, line in enumerate(f):
            label, values, usage = line.rstrip("\n").split(",")
            if usage == a.split:
                rows.append(i)
                pixels.append(np.asarray(values.split(), dtype=np.float32))
                if len(rows) == a.n:
                    break
    x = (np.stack(pixels) - np.asarray(norm["mean"], dtype=np.float32)) * np.float32(norm["scale"])
    with torch.inference_mode():
        out = net(torch.from_numpy(x).reshape(-1, 1, 48, 48))
    print(json.dumps({"rows": rows, "log_probs": out.tolist()}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--batches", default="32,128,256")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--secs", type=float, default=8.0)
    s.add_argument("--device", default="cpu", help="cpu or cuda (timings wait for the GPU to finish)")
    s.add_argument("--width", type=int, default=32)
    s.add_argument("--dropout", type=float, default=0.2)
    s.add_argument("--recipe", choices=["adadelta", "cpu"], default="adadelta", help="the training step's optimizer (see the module docstring)")
    q = sub.add_parser("logits")
    q.add_argument("--run", required=True, help="a vgg-bn run directory (best.safetensors, config.json, normalizer.json)")
    q.add_argument("--data", required=True)
    q.add_argument("--split", default="PrivateTest")
    q.add_argument("--n", type=int, default=16)
    a = p.parse_args()
    {"speed": cmd_speed, "logits": cmd_logits}[a.cmd](a)


if __name__ == "__main__":
    main()
