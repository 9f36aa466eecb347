"""rdet.mmrotate and rdet.load_checkpoint on MMRotate checkpoints: 0.x and 1.x layouts, float16 weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import rdet
from rdet import mmrotate
from rdet.config import load_config
from rdet.data.classes import get_classes

PARITY = Path(__file__).resolve().parents[2] / "shared" / "parity"
SMALL = ["model.backbone.depth=18", "model.neck.out_channels=16", "model.head.feat_channels=16",
         "model.head.stacked_convs=1", "model.backbone.weights=None"]  # fmt: skip
DOTA = list(get_classes("dota1.0"))


def small_config(kind: str):
    if kind == "retinanet":
        return load_config("rotated-retinanet-rbox-le90_r50_fpn_1x_dota", SMALL)
    extra = ["model.refine.stacked_convs=1", "model.refine.num_stages=2", "model.refine.stage_loss_weights=(1.0, 1.0)"]
    return load_config("r3det-oc_r50_fpn_1x_dota", SMALL + extra)


def half_rounded_model(cfg, seed: int = 0):
    """A model whose float weights are exactly representable in float16 (so a float16 file loses nothing)."""
    torch.manual_seed(seed)
    model = rdet.build_model(cfg).eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float() + 0.0)
    return model


def to_0x_names(key: str) -> str:
    """MMRotate 0.x R3Det names, written out independently of rdet.mmrotate (as in MMRotate 0.x's R3Det)."""
    key = key.replace("bbox_head_init.", "bbox_head.")
    for i in range(4):
        key = key.replace(f"bbox_head_refine.{i}.feat_refine_module.", f"feat_refine_module.{i}.")
        key = key.replace(f"bbox_head_refine.{i}.", f"refine_head.{i}.")
    return key


def mmrotate_file(path: Path, model, version: str, classes=DOTA) -> Path:
    """An MMRotate-like checkpoint: float16 tensors, the version's key names and metadata."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    if version == "0.x":
        if model.cfg.type == "r3det":
            state = {to_0x_names(k): v for k, v in state.items()}
        meta = {"mmcv_version": "1.6.1", "mmrotate_version": "0.3.2", "CLASSES": tuple(classes), "config": "..."}
        ckpt = {"meta": meta, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}
    else:
        meta = {"mmengine_version": "0.10.7", "cfg": "...", "dataset_meta": {"classes": list(classes)}}
        ckpt = {"meta": meta, "state_dict": state, "message_hub": {}}
    torch.save(ckpt, path)
    return path


def outputs(model, images):
    with torch.no_grad():
        return model.decode(images)


# ------------------------------------------------------------------------------------------ metadata
def test_detect_version_from_metadata():
    assert mmrotate.detect_version({"meta": {"mmrotate_version": "0.3.4", "mmcv_version": "1.7.0"}}) == "0.x"
    assert mmrotate.detect_version({"meta": {"mmrotate_version": "1.0.0rc1", "mmcv_version": "2.0.1"}}) == "1.x"
    assert mmrotate.detect_version({"meta": {"mmcv_version": "1.4.5", "CLASSES": ("ship",)}}) == "0.x"
    assert mmrotate.detect_version({"meta": {"CLASSES": ("ship",), "epoch": 12}}) == "0.x"
    assert mmrotate.detect_version({"meta": {"mmengine_version": "0.7.0", "mmcv_version": "2.0.0"}}) == "1.x"
    assert mmrotate.detect_version({"meta": {"dataset_meta": {"classes": ["ship"]}}}) == "1.x"
    assert mmrotate.detect_version({"state_dict": {}, "message_hub": {}}) == "1.x"
    assert mmrotate.detect_version({"state_dict": {}}) is None
    assert mmrotate.detect_version({"meta": {"epoch": 3}, "state_dict": {}}) is None


def test_class_names_from_metadata():
    assert mmrotate.class_names({"meta": {"CLASSES": ("plane", "ship")}}) == ["plane", "ship"]
    assert mmrotate.class_names({"meta": {"dataset_meta": {"classes": ("ship",)}}}) == ["ship"]
    assert mmrotate.class_names({"meta": {}}) is None and mmrotate.class_names({}) is None


def test_r3det_key_maps_are_inverse():
    model = rdet.build_model(small_config("r3det"))
    for key in model.state_dict():
        old = mmrotate.rdet_to_r3det_0x(key)
        assert old == to_0x_names(key)
        assert mmrotate.r3det_0x_to_rdet(old) == key
    assert mmrotate.r3det_0x_to_rdet("feat_refine_module.1.conv_5_1.weight") == (
        "bbox_head_refine.1.feat_refine_module.conv_5_1.weight"
    )


def test_convert_casts_half_and_drops_module_prefix():
    state = {"module.a": torch.ones(2, dtype=torch.float16), "module.n": torch.tensor(3)}
    out = mmrotate.convert_state_dict(state, "rotated_retinanet")
    assert set(out) == {"a", "n"} and out["a"].dtype == torch.float32 and out["n"].dtype == torch.int64


def test_convert_names_decide_the_layout():
    # the parity README's recipe re-keys a dev-1.x file to 0.x names and keeps its 1.x metadata
    out = mmrotate.convert_state_dict({"refine_head.0.retina_cls.bias": torch.zeros(1)}, "r3det", "1.x")
    assert list(out) == ["bbox_head_refine.0.retina_cls.bias"]
    assert list(mmrotate.convert_state_dict({"bbox_head.retina_cls.bias": torch.zeros(1)}, "rotated_retinanet")) == [
        "bbox_head.retina_cls.bias"
    ]
    with pytest.raises(ValueError, match="MMRotate version"):
        mmrotate.convert_state_dict({}, "r3det", "2.x")


# ------------------------------------------------------------------------------- load_checkpoint
@pytest.mark.parametrize("kind", ["retinanet", "r3det"])
@pytest.mark.parametrize("version", ["0.x", "1.x"])
def test_load_checkpoint_imports_both_layouts(kind, version, tmp_path):
    cfg = small_config(kind)
    cfg.model.anchors.mmrotate_version = version  # the metadata says which (no config text: the MMRotate version)
    src = half_rounded_model(cfg)
    path = mmrotate_file(tmp_path / "m.pth", src, version)
    model = rdet.load_checkpoint(path, config=small_config(kind))  # 0 missing / 0 unexpected, or it raises
    assert model.config.model.anchors.mmrotate_version == version
    for key, value in src.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
        assert model.state_dict()[key].dtype == value.dtype
    images = torch.randn(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    for a, b in zip(outputs(model, images), outputs(src, images)):
        assert torch.equal(a, b)


def test_0x_r3det_file_loads_where_it_used_to_fail(tmp_path):
    # issue 16 bug (1): 0.x R3Det names (bbox_head.*, refine_head.0.*, feat_refine_module.0.*) raised
    # "weights do not fit" because the loading path never renamed them.
    src = half_rounded_model(small_config("r3det"))
    path = mmrotate_file(tmp_path / "r3det_0x.pth", src, "0.x")
    keys = torch.load(path, weights_only=True)["state_dict"].keys()
    assert any(k.startswith("refine_head.1.") for k in keys) and any(
        k.startswith("feat_refine_module.1.") for k in keys
    )
    model = rdet.load_checkpoint(path, config=small_config("r3det"))
    assert type(model).__name__ == "R3Det"


def test_class_names_come_from_the_checkpoint(tmp_path):
    names = DOTA[::-1]  # a file trained with another class order: its names win
    path = mmrotate_file(tmp_path / "m.pth", half_rounded_model(small_config("retinanet")), "1.x", classes=names)
    model = rdet.load_checkpoint(path, config=small_config("retinanet"))
    assert model.class_names == names and list(model.config.data.classes) == names


def test_weights_of_another_architecture_name_the_config(tmp_path):
    path = mmrotate_file(tmp_path / "m.pth", half_rounded_model(small_config("retinanet")), "0.x")
    hrsc = load_config("rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc", SMALL)  # 1 class, not 15
    with pytest.raises(ValueError, match="rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc"):
        rdet.load_checkpoint(path, config=hrsc)


# --------------------------------------------------------------- the real MMRotate parity fixtures
needs_parity = pytest.mark.skipif(
    not (PARITY / "r3det_r18_small.pth").is_file(), reason="../shared/parity fixtures not present"
)
PARITY_SMALL = ["model.backbone.depth=18", "model.neck.out_channels=64", "model.head.feat_channels=64",
                "model.head.stacked_convs=2", "model.backbone.weights=None"]  # fmt: skip


def parity_config(kind: str):
    if kind == "retinanet":
        return load_config("rotated-retinanet-rbox-le90_r50_fpn_1x_dota", PARITY_SMALL)
    return load_config("r3det-oc_r50_fpn_1x_dota", PARITY_SMALL + ["model.refine.stacked_convs=2"])


@needs_parity
@pytest.mark.parametrize(
    "kind,file,tensors", [("retinanet", "rotated_retinanet_r18_small.pth", 148), ("r3det", "r3det_r18_small.pth", 166)]
)
def test_parity_fixtures_load_exactly(kind, file, tensors):
    ckpt = torch.load(PARITY / file, weights_only=True)
    assert mmrotate.detect_version(ckpt) == "1.x" and len(ckpt["state_dict"]) == tensors
    model = rdet.load_checkpoint(PARITY / file, config=parity_config(kind))  # 0 missing / 0 unexpected
    state = model.state_dict()
    assert set(state) == set(ckpt["state_dict"])
    for key, value in ckpt["state_dict"].items():
        assert torch.equal(state[key], value.float() if value.is_floating_point() else value), key
    assert model.class_names == ckpt["meta"]["dataset_meta"]["classes"]


@needs_parity
def test_parity_r3det_with_0x_keys_gives_identical_outputs(tmp_path):
    # The fixture README's recipe: the same float16 tensors under MMRotate 0.x names (the map MMRotate's
    # key-map script wrote), saved in tmp_path.
    mapping = json.loads((PARITY / "r3det_r18_small_0x_keys.json").read_text())["dev1x_to_0x"]
    assert all(mmrotate.rdet_to_r3det_0x(k) == v for k, v in mapping.items())
    ckpt = torch.load(PARITY / "r3det_r18_small.pth", weights_only=True)
    old = tmp_path / "r3det_r18_small_0x_keys.pth"
    torch.save({"meta": ckpt["meta"], "state_dict": {mapping[k]: v for k, v in ckpt["state_dict"].items()}}, old)
    assert any(k.startswith("refine_head.0.") for k in torch.load(old, weights_only=True)["state_dict"])
    new_model = rdet.load_checkpoint(PARITY / "r3det_r18_small.pth", config=parity_config("r3det"))
    old_model = rdet.load_checkpoint(old, config=parity_config("r3det"))
    images = torch.load(PARITY / "inputs.pt", weights_only=True)["inputs"][:1]  # a real normalised DOTA crop
    for a, b in zip(outputs(old_model, images), outputs(new_model, images)):
        assert torch.equal(a, b)
