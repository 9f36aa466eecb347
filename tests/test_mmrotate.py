"""rdet.mmrotate and rdet.load_checkpoint on MMRotate checkpoints: 0.x and 1.x layouts, float16 weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rdet
from rdet import mmrotate
from rdet.checkpoint import CheckpointError
from rdet.config import load_config
from rdet.data.classes import get_classes

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


# ---------------------------------------------------------------------------------- anchor convention
CFG_1X = "model = dict(bbox_head=dict(anchor_generator=dict(angle_version='le90', octave_base_scale=4, " \
    "type='FakeRotatedAnchorGenerator'), type='RotatedRetinaHead'))"  # fmt: skip


def test_anchor_version_from_the_stored_config_text():
    none = CFG_1X.replace("'le90'", "None")
    assert mmrotate.anchor_version({"meta": {"mmengine_version": "0.10.7", "cfg": CFG_1X}}) == "1.x"
    assert mmrotate.anchor_version({"meta": {"mmengine_version": "0.10.7", "cfg": none}}) == "0.x"
    zero = "model = dict(bbox_head=dict(anchor_generator=dict(type='RotatedAnchorGenerator', angles=[0.0])))"
    assert mmrotate.anchor_version({"meta": {"config": zero}}) == "0.x"
    assert mmrotate.anchor_version({"meta": {"mmrotate_version": "0.3.2"}}) == "0.x"  # no config text: the version
    assert mmrotate.anchor_version({"state_dict": {}}) is None


def test_load_checkpoint_takes_the_anchor_convention_from_the_metadata(tmp_path):
    cfg = small_config("retinanet")
    cfg.model.anchors.mmrotate_version = "1.x"
    src = half_rounded_model(cfg)
    path = mmrotate_file(tmp_path / "m.pth", src, "1.x")
    ckpt = torch.load(path, weights_only=True)
    ckpt["meta"]["cfg"] = CFG_1X
    torch.save(ckpt, path)
    model = rdet.load_checkpoint(path, config=small_config("retinanet"))  # the shipped config says 0.x
    assert model.config.model.anchors.mmrotate_version == "1.x"
    images = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for a, b in zip(outputs(model, images), outputs(src, images)):
        assert torch.equal(a, b)


def test_an_mmrotate_file_that_does_not_say_its_version_must_be_told(tmp_path):
    # issue 16: dev-1.x anchors differ from 0.x's, so weights of unknown origin would decode wrong boxes silently
    src = half_rounded_model(small_config("retinanet"))
    path = tmp_path / "bare.pth"
    torch.save({"state_dict": {k: v.half() if v.is_floating_point() else v for k, v in src.state_dict().items()}}, path)
    with pytest.raises(CheckpointError, match=r"bare\.pth: .*mmrotate_version='0\.x' or '1\.x'") as e:
        rdet.load_checkpoint(path, config=small_config("retinanet"))
    assert "\n" not in str(e.value) and "model.anchors.mmrotate_version" in str(e.value)
    for version in ("0.x", "1.x"):
        model = rdet.load_checkpoint(path, config=small_config("retinanet"), mmrotate_version=version)
        assert model.config.model.anchors.mmrotate_version == version
    with pytest.raises(CheckpointError, match="mmrotate_version must be"):
        rdet.load_checkpoint(path, config=small_config("retinanet"), mmrotate_version="2.x")


def test_the_anchor_convention_is_stored_in_rdet_checkpoints(tmp_path, tiny_config):
    from rdet.checkpoint import save_checkpoint

    cfg = tiny_config()
    cfg.model.anchors.mmrotate_version = "1.x"
    model = rdet.build_model(cfg)
    path = save_checkpoint(tmp_path / "c.pt", model, cfg)
    assert torch.load(path, weights_only=True)["config"]["model"]["anchors"]["mmrotate_version"] == "1.x"
    assert rdet.load_checkpoint(path).config.model.anchors.mmrotate_version == "1.x"
    old = torch.load(path, weights_only=True)  # a checkpoint written before the field existed: 0.x, as it behaved
    del old["config"]["model"]["anchors"]["mmrotate_version"]
    torch.save(old, tmp_path / "old.pt")
    assert rdet.load_checkpoint(tmp_path / "old.pt").config.model.anchors.mmrotate_version == "0.x"
