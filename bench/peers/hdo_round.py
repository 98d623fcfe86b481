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

Usage (inside the benchmark's own virtual environment, never a test dependency):
  bash bench/peers/setup.sh                 # creates bench/peers/.venv with torch
  bench/peers/.venv/bin/python bench/peers/hdo_round.py --hdo target/release/hdo
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


class Population:
    def __init__(self, n_fo, n_zo, batch, rv, nu, lr, seed=0):
        torch.manual_seed(seed)
        self.x, self.y = load_mnist_t10k()
        base = torch.nn.Linear(784, 10)
        self.models = [copy.deepcopy(base) for _ in range(n_fo + n_zo)]
        self.n_fo, self.n_zo, self.batch, self.rv, self.nu, self.lr = n_fo, n_zo, batch, rv, nu, lr
        self.opts = [torch.optim.SGD(m.parameters(), lr=lr) for m in self.models[:n_fo]]
        self.gen = torch.Generator().manual_seed(seed)

    def minibatch(self):
        idx = torch.randint(0, self.x.shape[0], (self.batch,), generator=self.gen)
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
            vs = [torch.randn(p.shape, generator=self.gen) for p in probe.parameters()]
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
        noise = {k: torch.randn((self.rv,) + v.shape, generator=self.gen) for k, v in params.items()}

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
        perm = torch.randperm(n, generator=self.gen).tolist()
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
            partner = torch.arange(n)
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
        t = time.perf_counter()
        pop.round(vectorized)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def time_hdo(hdo, fo, zo, rounds):
    with tempfile.TemporaryDirectory() as out:
        cmd = [hdo, "run", os.path.join(ROOT, "experiments", "fig2_logistic.toml"), "--set", "variant=[]",
               "--set", f"population.fo={fo}", "--set", f"population.zo={zo}", "--steps", str(rounds + 1),
               "--set", f"eval_every={rounds + 1}", "--set", "data.eval_limit=10", "--out", out, "-q"]
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
    ap.add_argument("--out", help="write the results as JSON here")
    a = ap.parse_args()
    pop = Population(a.fo, a.zo, batch=2, rv=128, nu=1e-4, lr=0.01)
    authors = time_rounds(pop, False, a.rounds)
    vectorized = time_rounds(pop, True, a.rounds)
    hdo = time_hdo(a.hdo, a.fo, a.zo, a.rounds)
    res = {"population": f"{a.fo} FO + {a.zo} ZO", "torch": torch.__version__, "threads": torch.get_num_threads(),
           "authors_loop_s_per_round": authors, "torch_vectorized_s_per_round": vectorized, "hdo_s_per_round": hdo,
           "hdo_speedup_vs_authors": authors / hdo, "hdo_speedup_vs_vectorized": vectorized / hdo}
    print(f"{res['population']} logistic round (batch 2, rv 128), torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"  authors'-style PyTorch loop : {authors:8.3f} s/round")
    print(f"  PyTorch vmap-vectorized     : {vectorized:8.3f} s/round")
    print(f"  hdo                         : {hdo:8.3f} s/round")
    print(f"  hdo is {authors / hdo:.1f}x faster than the authors' loop, {vectorized / hdo:.1f}x faster than vmap")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
