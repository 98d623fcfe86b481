"""Side-by-side peer for `hdo bench`: one HDO round of the Figure 2 hybrid population
(24 FO + 256 ZO logistic-regression nodes on MNIST, batch 2, rv = 128 forward-difference
directions, nu = 1e-4, lr = 0.01, then a random perfect matching averages pairs), timed three ways
on the same machine:

  1. "authors"    - the HDO authors' structure: a Python loop over nodes; each ZO direction
                    deep-copies the parameters, draws torch.randn per tensor, evaluates the loss
                    and accumulates (their ZAD optimizer), FO nodes run backward + SGD; pairs swap
                    flattened parameter vectors.
  2. "vectorized" - the same round with torch.func.vmap over the rv directions of each ZO node
                    and batched pair averaging (what a careful PyTorch user would write).
  3. "hdo"        - the `hdo` binary on the same population (its `train_s` per round).

With --cnn it also times one FO step of the HDO CNN (batch 256, SGD with momentum 0.9) in PyTorch
eager against hdo's (`hdo bench --only steps`), the "FO step within 1.3x of PyTorch" target.

Usage (inside the benchmark's own virtual environment, never a test dependency):
  bash bench/peers/setup.sh                 # creates bench/peers/.venv with torch
  bench/peers/.venv/bin/python bench/peers/hdo_round.py --hdo target/release/hdo
On a GPU machine (PyTorch with CUDA installed; hdo through wgpu/Vulkan, stacked ZO passes):
  python3 bench/peers/hdo_round.py --device cuda --hdo-device wgpu --hdo-set zo.stack=128 --cnn
"""

import argparse
import copy
import gzip
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_mnist_t10k():
    """The bundled MNIST test split (the cost does not depend on which images are used)."""
    d = os.path.join(ROOT, "datasets", "data", "mnist")
    with gzip.open(os.path.join(d, "t10k-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784).astype(np.float32)
    with gzip.open(os.path.join(d, "t10k-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    x = (x / 255.0 - 0.1307) / 0.3081
    return torch.from_numpy(x), torch.from_numpy(y)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Population:
    def __init__(self, n_fo, n_zo, batch, rv, nu, lr, device, seed=0):
        torch.manual_seed(seed)
        x, y = load_mnist_t10k()
        self.x, self.y, self.device = x.to(device), y.to(device), device
        base = torch.nn.Linear(784, 10).to(device)
        self.models = [copy.deepcopy(base) for _ in range(n_fo + n_zo)]
        self.n_fo, self.n_zo, self.batch, self.rv, self.nu, self.lr = n_fo, n_zo, batch, rv, nu, lr
        self.opts = [torch.optim.SGD(m.parameters(), lr=lr) for m in self.models[:n_fo]]
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def minibatch(self):
        idx = torch.randint(0, self.x.shape[0], (self.batch,), generator=self.gen, device=self.device)
        return self.x[idx], self.y[idx]

    def fo_step(self, i):
        m, opt = self.models[i], self.opts[i]
        xb, yb = self.minibatch()
        opt.zero_grad()
        F.cross_entropy(m(xb), yb).backward()
        opt.step()

    @torch.no_grad()
    def zo_step_authors(self, i):
        m = self.models[i]
        xb, yb = self.minibatch()
        loss0 = F.cross_entropy(m(xb), yb)
        grads = [torch.zeros_like(p) for p in m.parameters()]
        for _ in range(self.rv):
            probe = copy.deepcopy(m)  # the authors deep-copy per direction
            vs = [torch.randn(p.shape, generator=self.gen, device=self.device) for p in probe.parameters()]
            for p, v in zip(probe.parameters(), vs):
                p.add_(self.nu * v)
            lv = F.cross_entropy(probe(xb), yb)
            c = (lv - loss0) / (self.rv * self.nu)
            for g, v in zip(grads, vs):
                g.add_(c * v)
        for p, g in zip(m.parameters(), grads):
            p.sub_(self.lr * g)

    @torch.no_grad()
    def zo_step_vectorized(self, i):
        m = self.models[i]
        xb, yb = self.minibatch()
        params = {k: v for k, v in m.named_parameters()}
        loss0 = F.cross_entropy(m(xb), yb)
        noise = {k: torch.randn((self.rv,) + v.shape, generator=self.gen, device=self.device)
                 for k, v in params.items()}

        def loss_along(u):
            moved = {k: params[k] + self.nu * u[k] for k in params}
            return F.cross_entropy(functional_call(m, moved, (xb,)), yb)

        losses = vmap(loss_along)(noise)  # [rv]
        c = (losses - loss0) / (self.rv * self.nu)
        for k, p in params.items():
            p.sub_(self.lr * torch.tensordot(c, noise[k], dims=1))

    @torch.no_grad()
    def average_pairs(self, vectorized):
        n = len(self.models)
        perm = torch.randperm(n, generator=self.gen, device=self.device).tolist()
        pairs = [(perm[i], perm[i + 1]) for i in range(0, n - 1, 2)]
        if not vectorized:
            for a, b in pairs:  # swap flattened vectors, as over MPI
                va = torch.nn.utils.parameters_to_vector(self.models[a].parameters())
                vb = torch.nn.utils.parameters_to_vector(self.models[b].parameters())
                avg = (va + vb) / 2
                torch.nn.utils.vector_to_parameters(avg.clone(), self.models[a].parameters())
                torch.nn.utils.vector_to_parameters(avg.clone(), self.models[b].parameters())
        else:
            flat = torch.stack([torch.nn.utils.parameters_to_vector(m.parameters()) for m in self.models])
            partner = torch.arange(n, device=self.device)
            for a, b in pairs:
                partner[a], partner[b] = b, a
            flat = (flat + flat[partner]) / 2
            for m, v in zip(self.models, flat):
                torch.nn.utils.vector_to_parameters(v, m.parameters())

    def round(self, vectorized):
        for i in range(self.n_fo):
            self.fo_step(i)
        for i in range(self.n_fo, self.n_fo + self.n_zo):
            (self.zo_step_vectorized if vectorized else self.zo_step_authors)(i)
        self.average_pairs(vectorized)


def time_rounds(pop, vectorized, rounds):
    pop.round(vectorized)  # warm-up
    times = []
    for _ in range(rounds):
        sync(pop.device)
        t = time.perf_counter()
        pop.round(vectorized)
        sync(pop.device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def hdo_cnn():
    """The HDO CNN exactly as hdo builds it (conv 8-16-32 with BN+ReLU, pool after the 2nd and
    3rd, two hidden Linear+BN+ReLU of 128, linear head)."""
    c = lambda i, o: [torch.nn.Conv2d(i, o, 3, padding=1), torch.nn.BatchNorm2d(o), torch.nn.ReLU()]
    d = lambda i, o: [torch.nn.Linear(i, o), torch.nn.BatchNorm1d(o), torch.nn.ReLU()]
    return torch.nn.Sequential(*c(1, 8), *c(8, 16), torch.nn.MaxPool2d(2), *c(16, 32), torch.nn.MaxPool2d(2),
                               torch.nn.Flatten(), *d(32 * 7 * 7, 128), *d(128, 128), torch.nn.Linear(128, 10))


def time_torch_cnn_fo_step(device, reps):
    x, y = load_mnist_t10k()
    xb, yb = x[:256].reshape(256, 1, 28, 28).to(device), y[:256].to(device)
    m = hdo_cnn().to(device)
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        F.cross_entropy(m(xb), yb).backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(reps):
        sync(device)
        t = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def time_hdo_cnn_fo_step(hdo, device, reps):
    with tempfile.TemporaryDirectory() as out:
        path = os.path.join(out, "bench.json")
        subprocess.run([hdo, "bench", "--only", "steps", "--model", "cnn", "--device", device, "--reps", str(reps),
                        "--out", path],
                       check=True, stdout=subprocess.DEVNULL)
        with open(path) as f:
            steps = json.load(f)["steps"]
        return next(s["seconds"] for s in steps if s["name"].startswith("cnn") and "FO step" in s["name"])


def time_hdo(hdo, fo, zo, rounds, device, sets):
    with tempfile.TemporaryDirectory() as out:
        cmd = [hdo, "run", os.path.join(ROOT, "experiments", "fig2_logistic.toml"), "--set", "variant=[]",
               "--set", f"population.fo={fo}", "--set", f"population.zo={zo}", "--steps", str(rounds + 1),
               "--set", f"eval_every={rounds + 1}", "--set", "data.eval_limit=10", "--out", out, "-q",
               "--device", device]
        for kv in sets:
            cmd += ["--set", kv]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(out, "metrics.jsonl")) as f:
            last = [json.loads(line) for line in f][-1]
        return last["train_s"] / (rounds + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hdo", default=os.path.join(ROOT, "target", "release", "hdo"))
    ap.add_argument("--fo", type=int, default=24)
    ap.add_argument("--zo", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="PyTorch device: cpu or cuda")
    ap.add_argument("--hdo-device", default="cpu", help="hdo device: cpu or wgpu")
    ap.add_argument("--hdo-set", action="append", default=[], help="extra hdo --set key=value (repeatable)")
    ap.add_argument("--cnn", action="store_true", help="also compare one FO step of the CNN")
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    device = torch.device(a.device)
    pop = Population(a.fo, a.zo, batch=2, rv=128, nu=1e-4, lr=0.01, device=device)
    authors = time_rounds(pop, False, a.rounds)
    vectorized = time_rounds(pop, True, a.rounds)
    hdo = time_hdo(a.hdo, a.fo, a.zo, a.rounds, a.hdo_device, a.hdo_set)
    res = {"population": f"{a.fo} FO + {a.zo} ZO", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "torch_device": a.device, "hdo_device": a.hdo_device, "hdo_sets": a.hdo_set,
           "authors_loop_s_per_round": authors, "torch_vectorized_s_per_round": vectorized, "hdo_s_per_round": hdo,
           "hdo_speedup_vs_authors": authors / hdo, "hdo_speedup_vs_vectorized": vectorized / hdo}
    print(f"{res['population']} logistic round (batch 2, rv 128), torch {torch.__version__} on {a.device}, "
          f"{torch.get_num_threads()} threads; hdo on {a.hdo_device} {' '.join(a.hdo_set)}")
    print(f"  authors'-style PyTorch loop : {authors:8.3f} s/round")
    print(f"  PyTorch vmap-vectorized     : {vectorized:8.3f} s/round")
    print(f"  hdo                         : {hdo:8.3f} s/round")
    print(f"  hdo is {authors / hdo:.1f}x faster than the authors' loop, {vectorized / hdo:.1f}x faster than vmap")
    if a.cnn:
        torch_fo = time_torch_cnn_fo_step(device, 10)
        hdo_fo = time_hdo_cnn_fo_step(a.hdo, a.hdo_device, 10)
        res.update({"torch_cnn_fo_step_s": torch_fo, "hdo_cnn_fo_step_s": hdo_fo, "hdo_cnn_fo_vs_torch": hdo_fo / torch_fo})
        print(f"CNN FO step (batch 256, SGD momentum): PyTorch eager {torch_fo * 1e3:.2f} ms, "
              f"hdo {hdo_fo * 1e3:.2f} ms = {hdo_fo / torch_fo:.2f}x PyTorch's time")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
