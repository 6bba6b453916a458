"""The render spec (etl/heatmaps/spec.py) is the one home of the render settings: a new option is one new field
there, carried through store attrs and checkpoints by the spec's own methods; the checkpoint's render dict keeps
its key order and types (checkpoints stay byte-identical); train/ uses the pure rendering, never the command."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest
import torch
import zarr
from import_graph import ROOT, all_modules, module_imports

from etl.commands.info import store_summary
from etl.common.errors import ActrecError
from etl.heatmaps.spec import RenderSpec
from etl.pose.skeleton import get_layout
from etl.stores.heatmap_store import HeatmapStore
from train.checkpoint import RENDER_KEYS, _check_render, render_settings
from train.config import FitConfig

# The render dict of every checkpoint written before the spec existed, in its order (torch.save keeps it).
LEGACY_RENDER_KEYS = ("layout", "channel_preset", "channels", "flip_permutation", "sigma", "size", "padding")
LEGACY_RENDER_KEYS += ("eps", "dtype", "input_size")


def _spec_with_a_new_option():
    """A copy of the spec with one more drawn field, declared as a new option would be."""
    field = dataclasses.field(default=1.0, metadata={"draw": True})
    return dataclasses.make_dataclass(
        "GammaSpec", [("gamma", float, field)], bases=(RenderSpec,), frozen=True
    )


def test_a_new_render_option_round_trips_through_store_attrs_and_the_checkpoint(tmp_path):
    spec_cls = _spec_with_a_new_option()
    spec = spec_cls(size=32, sigma=0.8, gamma=2.5)
    layout = get_layout("coco17")
    # store attrs, written to and read back from a real zarr group (JSON on disk)
    group = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    group.attrs.update(spec.to_attrs(layout))
    attrs = dict(zarr.open_group(str(tmp_path / "g.zarr"), mode="r").attrs)
    assert attrs["render"]["gamma"] == 2.5
    assert spec_cls.from_attrs(attrs) == spec
    # the checkpoint's render dict, through torch.save / torch.load(weights_only=True)
    render = spec.to_checkpoint(layout, input_size=28)
    assert list(render) == list(spec_cls.checkpoint_keys())
    assert list(render)[-2:] == ["gamma", "input_size"]
    torch.save({"render": render}, tmp_path / "c.pt")
    loaded = torch.load(tmp_path / "c.pt", weights_only=True)["render"]
    assert loaded == render
    assert spec_cls.from_checkpoint(loaded) == spec_cls(size=32, sigma=0.8, gamma=2.5, codec=spec.codec)
    # the option is part of the render's identity
    assert spec.fingerprint("h") != spec_cls(size=32, sigma=0.8).fingerprint("h")


def test_a_store_older_than_the_option_reads_with_its_default():
    spec_cls = _spec_with_a_new_option()
    attrs = RenderSpec(size=32).to_attrs(get_layout("coco17"))
    assert spec_cls.from_attrs(attrs) == spec_cls(size=32, gamma=1.0)


def test_the_checkpoint_render_dict_keeps_its_keys_order_and_types():
    assert RENDER_KEYS == LEGACY_RENDER_KEYS
    render = render_settings("coco17", "joints+limbs", size=64, sigma=0.6, input_size=56)
    assert tuple(render) == LEGACY_RENDER_KEYS
    assert [type(render[k]) for k in ("sigma", "size", "padding", "eps", "dtype", "input_size")] == [
        float,
        int,
        float,
        float,
        str,
        int,
    ]
    assert render["channel_preset"] == "joints+limbs"
    assert render["layout"] == "coco17"
    assert len(render["channels"]) == 34
    assert sorted(render["flip_permutation"]) == list(range(34))
    _check_render(render, 34, "test")
    assert RenderSpec.from_checkpoint(render) == RenderSpec(size=64, sigma=0.6)


def test_from_checkpoint_casts_to_the_field_types():
    render = render_settings("coco17", "joints", size=32, sigma=0.6)
    render["size"], render["sigma"] = 32.0, 1
    spec = RenderSpec.from_checkpoint(render)
    assert (type(spec.size), type(spec.sigma)) == (int, float)


def test_fit_takes_each_drawn_field_with_the_spec_default():
    """fit's `--source keypoints` options are the spec's drawn fields (fit_config keeps them flat: a
    checkpoint's fit_config is unchanged), defaulting to the spec's values."""
    cfg = FitConfig(store="x")
    for name in RenderSpec.draw_fields():
        assert getattr(cfg, name) == RenderSpec.defaults()[name], name
    assert cfg.render_spec() == RenderSpec()
    assert dataclasses.replace(cfg, sigma=1.5).render_spec().sigma == 1.5


def test_check_refuses_bad_values_in_one_line():
    for bad, words in (
        ({"dtype": "int8"}, "--dtype"),
        ({"size": 4}, "--size"),
        ({"sigma": 0}, "--sigma"),
        ({"frames_per_chunk": 0}, "--frames-per-chunk"),
        ({"codec": "gzip"}, "codec"),
    ):
        with pytest.raises(ActrecError, match=words):
            RenderSpec(**bad).check()
    RenderSpec().check()
    assert RenderSpec(codec="zstd").level == 1
    assert RenderSpec().level == 5


def test_a_store_of_the_previous_format_is_refused_with_how_to_remake_it(heatmap_store, tmp_path):
    old = tmp_path / "old.zarr"
    shutil.copytree(heatmap_store, old)
    meta = json.loads((old / "zarr.json").read_text())
    meta["attributes"]["format_version"] = 2
    (old / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ActrecError, match=r"format_version 2.*Re-run `actrec-etl render`") as info:
        HeatmapStore.open(old)
    assert "\n" not in str(info.value)


def test_the_store_holds_the_spec_once(heatmap_store, small_render):
    attrs = HeatmapStore.open(heatmap_store).attrs
    text = json.dumps(attrs)
    assert text.count('"sigma"') == 1
    assert text.count('"padding"') == 1
    assert HeatmapStore.open(heatmap_store).spec == small_render
    header = store_summary(heatmap_store).header  # `actrec-etl info` reads the spec from its one place
    assert "34 channels (joints+limbs), 32x32 px, sigma 0.6, uint8" in header


def _reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for n in module_imports(todo.pop()):
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_no_module_under_train_imports_the_render_command():
    offenders = {
        m for m in all_modules() if m.startswith("train.") and "etl.commands.render" in _reachable(m)
    }
    assert offenders == set()
    assert "etl.heatmaps.clip" in module_imports("train.deploy.predict")  # the checker sees the pure render


def test_the_spec_module_imports_nothing_heavy():
    code = (
        "import sys\nimport etl.heatmaps.spec\n"
        "print(','.join(sorted(m for m in ('numpy', 'zarr', 'numba', 'torch') if m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
