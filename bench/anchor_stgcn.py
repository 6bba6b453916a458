"""MMAction2 1.2's ST-GCN++ (STGCN + GCNHead, built from its stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py
config). Runs in the anchor venv (bench/anchor_env.sh), never in actrec's: called as a subprocess by
tests/test_gcn_parity.py and bench/bench_gcn.py.

    python anchor_stgcn.py dump OUT.npz SEED
        randomised weights (every parameter and BN statistic), a fixed input (2, 2, 24, 17, 3): writes the state
        dict (one array per key), `input__` and `logits__` (eval mode, the recogniser's own head path)
    python anchor_stgcn.py step BATCH FRAMES THREADS STEPS
        CPU training steps (forward, cross-entropy, backward, the config's SGD): prints JSON with the seconds per step
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
import types
from pathlib import Path

# The mmaction2 1.2.0 wheel lacks mmaction/models/localizers/drn (a packaging bug) which mmaction.models imports;
# the localizer is not used here, so a stand-in module lets the recognisers import.
for _name in ("mmaction.models.localizers.drn", "mmaction.models.localizers.drn.drn"):
    sys.modules[_name] = types.ModuleType(_name)
sys.modules["mmaction.models.localizers.drn.drn"].DRN = None
# mmaction.utils.dependency imports the importlib_metadata backport, which the recipe (--no-deps) does not install;
# the standard library's module has the two names it uses
sys.modules.setdefault("importlib_metadata", importlib.metadata)

import mmaction  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmaction.registry import MODELS  # noqa: E402
from mmaction.utils import register_all_modules  # noqa: E402
from mmengine.config import Config  # noqa: E402

CONFIG = (
    Path(mmaction.__file__).parent
    / ".mim/configs/skeleton/stgcnpp/stgcnpp_8xb16-joint-u100-80e_ntu60-xsub-keypoint-2d.py"
)


def build() -> torch.nn.Module:
    register_all_modules()
    model = MODELS.build(Config.fromfile(str(CONFIG)).model)
    model.init_weights()
    return model


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    # RecognizerGCN takes (N, num_clips, M, T, V, C); one clip each
    return model.extract_feat(x[:, None], stage="head")[0]


def dump(out: str, seed: int) -> None:
    torch.manual_seed(seed)
    model = build()
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            else:
                t.copy_(torch.randn_like(t) * 0.2)
    model.eval()
    x = torch.randn(2, 2, 24, 17, 3)
    with torch.no_grad():
        y = logits(model, x)
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    np.savez(out, input__=x.numpy(), logits__=y.numpy(), **arrays)


def step(batch: int, frames: int, threads: int, steps: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build().train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x = torch.randn(batch, 2, frames, 17, 3)
    y = torch.randint(0, 60, (batch,))
    times = []
    for _ in range(steps + 1):  # the first is warm-up
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(logits(model, x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"s_per_step": sorted(times[1:])[len(times[1:]) // 2], "torch": torch.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2], int(sys.argv[3]))
    else:
        step(*(int(a) for a in sys.argv[2:6]))
