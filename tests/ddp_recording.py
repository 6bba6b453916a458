"""`python -m torch.distributed.run ... tests/ddp_recording.py OUT_DIR fit ...`: `actrec-train` with every training
item a rank loads recorded to OUT_DIR/rank<R>.json as [store row, epoch] pairs, so a test can check what each
rank saw. Run by tests/test_train.py's DDP test only."""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path

from train.cli import app
from train.sources.heatmaps import HeatmapClips

out_dir = Path(sys.argv.pop(1))
seen: list[list[int]] = []
_load = HeatmapClips.__getitem__


def _recording_getitem(self, item):
    index, epoch = item
    if self.train:  # validation (rank 0 only) is not split across ranks
        seen.append([int(self.rows[index]), int(epoch)])
    return _load(self, item)


HeatmapClips.__getitem__ = _recording_getitem
atexit.register(lambda: (out_dir / f"rank{os.environ['RANK']}.json").write_text(json.dumps(seen)))
app(prog_name="actrec-train")
