"""bench/torch_resnet.py: PyTorch's ResNet-18 (torchvision.models.resnet18, 224x224, 1000
classes; MODEL=mobilenet_v2 for torchvision's mobilenet_v2) train-step and inference speed on
the CPU, the baseline for bench/resnet.lua.
  python3 bench/torch_resnet.py BATCH [nchw|cl|jit] [REPS] [train|infer|both]
'cl' is channels_last; 'jit' is NCHW inference through torch.jit.trace, freeze and
optimize_for_inference (Conv-BN folding, oneDNN fusions): the counterpart of trl's
hybridize(). A train step is forward + cross-entropy + backward + SGD (momentum 0.9,
wd 1e-4); inference runs in eval mode under torch.no_grad(). Medians of REPS steps after 2
warm-up steps; the last line is machine-readable for bench/vs_torch.sh.
"""
import os
import resource
import statistics
import sys
import time

import torch
import torchvision

torch.set_num_threads(int(os.environ.get("TRL_NUM_THREADS", "2")))
batch = int(sys.argv[1]) if len(sys.argv) > 1 else 32
layout = sys.argv[2] if len(sys.argv) > 2 else "nchw"
reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
mode = sys.argv[4] if len(sys.argv) > 4 else "both"
fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
if layout == "jit" and mode != "infer":
    mode = "infer"   # a frozen graph does not train

torch.manual_seed(1)
model = os.environ.get("MODEL", "resnet18")
net = getattr(torchvision.models, model)(num_classes=1000).to(memory_format=fmt)
x = torch.empty(batch, 3, 224, 224).uniform_(-1, 1).contiguous(memory_format=fmt)
y = torch.tensor([(i * 37) % 1000 for i in range(batch)])
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
ce = torch.nn.CrossEntropyLoss(reduction="sum")


def train_step():
    net.train()
    opt.zero_grad(set_to_none=True)
    loss = ce(net(x), y)
    loss.backward()
    opt.step()


frozen = None


def infer_step():
    global frozen
    net.eval()
    with torch.no_grad():
        if layout == "jit":
            if frozen is None:
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(net, x)))
            frozen(x)
        else:
            net(x)


def bench(step, name):
    for _ in range(2):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    m = statistics.median(times)
    print(f"torch {layout:4s} {name:5s} batch {batch:3d}: {batch / m:7.2f} img/s "
          f"(median {m:.3f} s, min {min(times):.3f} s, {reps} reps)")
    return batch / m


res = {"train": 0.0, "infer": 0.0}
if mode in ("both", "train"):
    res["train"] = bench(train_step, "train")
if mode in ("both", "infer"):
    res["infer"] = bench(infer_step, "infer")
hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"RESULT torch-{layout} batch={batch} train={res['train']:.3f} infer={res['infer']:.3f} "
      f"hwm_mb={hwm:.0f} threads={torch.get_num_threads()} torch={torch.__version__}")
