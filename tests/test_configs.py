"""Every file in configs/ loads, validates and builds; the published ones carry MMRotate dev-1.x's values.

The expected values below are copied by hand from open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
configs/rotated_retinanet/*.py, configs/kld/*.py and their _base_ files (datasets/dota.py, datasets/hrsc.py,
schedules/schedule_1x.py, schedules/schedule_6x.py, default_runtime.py). Models are built with a ResNet-18
backbone and no ImageNet file (``--set`` overrides) to stay fast.
"""

import re
from pathlib import Path

import pytest
import torch

import rdet
import rdet.config
from rdet.config import Config, apply_override

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
ALL_FILES = sorted(rdet.config.config_names().values())
# The Rotated RetinaNet rows of the KLD table (configs/ld and configs/r3det have tests of their own).
PUBLISHED = [
    p
    for p in ALL_FILES
    if p.relative_to(CONFIGS).parts[0] in ("kld", "rotated_retinanet") and not p.name.startswith("r3det")
]
FAST = ["model.backbone.depth=18", "model.backbone.weights=None"]

# ------------------------------------------------------------------ expected values (dotted field -> value)
COMMON = {
    "model.type": "rotated_retinanet",
    "model.backbone.depth": 50,
    "model.backbone.frozen_stages": 1,
    "model.backbone.norm_eval": True,
    "model.neck.out_channels": 256,
    "model.neck.start_level": 1,
    "model.neck.num_outs": 5,
    "model.neck.add_extra_convs": "on_input",
    "model.anchors.octave_base_scale": 4.0,
    "model.anchors.scales_per_octave": 3,
    "model.anchors.ratios": (1.0, 0.5, 2.0),
    "model.anchors.strides": (8, 16, 32, 64, 128),
    "model.coder.norm_factor": None,
    "model.coder.means": (0.0,) * 5,
    "model.coder.stds": (1.0,) * 5,
    "model.head.stacked_convs": 4,
    "model.head.feat_channels": 256,
    "model.head.pos_iou_thr": 0.5,
    "model.head.neg_iou_thr": 0.4,
    "model.head.min_pos_iou": 0.0,
    "model.head.reg_max": 0,
    "model.head.loss_cls.gamma": 2.0,
    "model.head.loss_cls.alpha": 0.25,
    "model.head.loss_cls.loss_weight": 1.0,
    "model.test.nms_pre": 2000,
    "model.test.score_thr": 0.05,
    "model.test.iou_thr": 0.1,
    "model.test.max_per_img": 2000,
    "data.flip": (0.25, 0.25, 0.25),
    "data.filter_empty": True,
    "train.batch_size": 2,
    "train.workers": 2,
    "train.max_iters": 0,
    "train.optimizer": "sgd",
    "train.lr": 0.0025,
    "train.momentum": 0.9,
    "train.weight_decay": 0.0001,
    "train.warmup_iters": 500,
    "train.warmup_ratio": 1 / 3,
    "train.gamma": 0.1,
    "train.grad_clip": 35.0,
    "train.amp": False,
    "train.eval_interval": 1,
    "train.log_interval": 50,
}
DOTA = {
    "model.head.num_classes": 15,
    "data.format": "dota",
    "data.class_list": "dota1.0",
    "data.classes": (),
    "data.img_size": (1024, 1024),
    "data.rotate_prob": 0.0,
    "train.epochs": 12,
    "train.milestones": (8, 11),
}
HRSC = {
    "model.head.num_classes": 1,
    "data.format": "hrsc",
    "data.classes": ("ship",),
    "data.img_size": (512, 800),  # (height, width) for mmdet.Resize(scale=(800, 512), keep_ratio=True)
    "data.rotate_prob": 0.5,
    "data.rotate_range": 180.0,
    "train.epochs": 72,
    "train.milestones": (48, 66),
}
LE90 = {
    "model.coder.angle_version": "le90",
    "model.coder.edge_swap": True,
    "model.coder.proj_xy": True,
    "model.head.assign_iou": "rotated",
}
OC_DOTA = {
    "model.coder.angle_version": "oc",
    "model.coder.edge_swap": False,
    "model.coder.proj_xy": False,
    "model.head.assign_iou": "horizontal",
    "data.flip": (0.5, 0.0, 0.0),
}
OC_HRSC = {
    "model.coder.angle_version": "oc",
    "model.coder.edge_swap": True,
    "model.coder.proj_xy": True,
    "model.head.assign_iou": "horizontal",
}
L1 = {"model.head.loss_bbox.type": "l1", "model.head.loss_bbox.loss_weight": 1.0, "model.head.reg_decoded_bbox": False}


def kld(stable: bool, weight: float) -> dict:
    return {
        "model.head.reg_decoded_bbox": True,
        "model.head.loss_bbox.type": "kld",
        "model.head.loss_bbox.stable": stable,
        "model.head.loss_bbox.fun": "log1p",
        "model.head.loss_bbox.tau": 1.0,
        "model.head.loss_bbox.alpha": 1.0,
        "model.head.loss_bbox.sqrt": False,
        "model.head.loss_bbox.loss_weight": weight,
    }


ADAMW = {"train.optimizer": "adamw", "train.lr": 0.0001, "train.betas": (0.9, 0.999), "train.weight_decay": 0.05}

EXPECTED = {
    "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py": {**DOTA, **LE90, **L1},
    "rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py": {**DOTA, **OC_DOTA, **L1},
    "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py": {**HRSC, **LE90, **L1},
    "rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_rr-6x_hrsc.py": {**HRSC, **OC_HRSC, **L1},
    "kld/rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota.py": {**DOTA, **OC_DOTA, **kld(False, 1.0)},
    "kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_1x_dota.py": {**DOTA, **OC_DOTA, **kld(True, 5.5)},
    "kld/rotated-retinanet-rbox-le90_r50_fpn_kld_1x_dota.py": {**DOTA, **LE90, **kld(False, 1.0)},
    "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py": {**DOTA, **LE90, **kld(True, 5.5)},
    "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota.py": {**DOTA, **LE90, **kld(True, 5.5), **ADAMW},
    # the le90 HRSC kld-stable config uses loss_weight=1.0, the others 5.5
    "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc.py": {**HRSC, **LE90, **kld(True, 1.0)},
    "kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc.py": {**HRSC, **OC_HRSC, **kld(True, 5.5)},
}


def field(config: Config, dotted: str):
    obj = config
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def rel(path: Path) -> str:
    return path.relative_to(CONFIGS).as_posix()


# ------------------------------------------------------------------ every file


def test_every_published_config_has_expectations():
    assert sorted(rel(p) for p in PUBLISHED) == sorted(EXPECTED)


@pytest.mark.parametrize("path", ALL_FILES, ids=rel)
def test_loads_and_builds(path):
    config = rdet.load_config(path, FAST)
    assert config.source == str(path)
    assert config.model.backbone.depth == 18
    model = rdet.build_model(config)
    state = model.state_dict()
    h = config.model.head
    a, c, f = 9, h.num_classes, h.feat_channels  # 9 anchors: 3 ratios x 3 scales per octave
    r = 5 * (h.reg_max + 1) if h.reg_max else 5  # distribution head: reg_max + 1 bins per delta
    # MMDetection's parameter names and shapes, so published checkpoints map one to one
    if config.model.type == "r3det":  # dev-1.x names: an init head (9 anchors) and 1-anchor refine heads
        assert tuple(state["bbox_head_init.retina_cls.weight"].shape) == (a * c, f, 3, 3)
        assert tuple(state["bbox_head_refine.0.retina_cls.weight"].shape) == (c, f, 3, 3)
        assert len(model.bbox_head_init.cls_convs) == h.stacked_convs
        assert len(model.bbox_head_refine[0].cls_convs) == config.model.refine.stacked_convs
        return
    assert tuple(state["bbox_head.retina_cls.weight"].shape) == (a * c, f, 3, 3)
    assert tuple(state["bbox_head.retina_reg.weight"].shape) == (a * r, f, 3, 3)
    assert len(model.bbox_head.cls_convs) == len(model.bbox_head.reg_convs) == h.stacked_convs


def test_forward_shapes_of_a_published_config():
    config = rdet.load_config(CONFIGS / "kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc.py", FAST)
    model = rdet.build_model(config).eval()
    with torch.no_grad():
        out = model.head_outputs(torch.zeros(1, 3, 64, 96))
    # P3..P7 of a 64x96 image (strides 8..128, extra levels by stride-2 convs): 8x12, 4x6, 2x3, 1x2, 1x1
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2), (1, 1)]
    assert out.num_per_level == [h * w * 9 for h, w in sizes]
    n = sum(out.num_per_level)
    assert tuple(out.cls.shape) == (1, n, 1) and tuple(out.reg.shape) == (1, n, 5)  # one class: ship
    assert tuple(out.anchors.shape) == (n, 5)


# ------------------------------------------------------------------ published values


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_values(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the shipped configs read data and write work_dirs under the current folder
    path = CONFIGS / name
    config = rdet.load_config(path)
    wrong = {k: (field(config, k), v) for k, v in {**COMMON, **EXPECTED[name]}.items() if field(config, k) != v}
    assert not wrong, f"{name}: field: (got, published) {wrong}"
    assert config.name == path.stem
    assert config.reference == f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/{name}"
    assert config.train.work_dir == str(tmp_path / "work_dirs" / path.stem)  # mmengine's work_dirs/<name>
    # init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50') -> torchvision's ImageNet file
    assert config.model.backbone.weights == str(tmp_path / "checkpoints" / "resnet50-0676ba61.pth")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_data_paths_of_shipped_configs_are_under_the_current_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MMRotate's data_root='data/...' is relative to where it runs: from_cwd
    d = rdet.load_config(CONFIGS / name).data
    if "dota" in name:  # val_dataloader of _base_/datasets/dota.py also reads trainval
        train = val = tmp_path / "data" / "split_ss_dota" / "trainval"
        assert (d.train_images, d.train_labels) == (str(train / "images"), str(train / "annfiles"))
        assert (d.val_images, d.val_labels) == (str(val / "images"), str(val / "annfiles"))
    else:  # ImageSets/trainval.txt and ImageSets/test.txt of HRSC2016 as folders
        hrsc = tmp_path / "data" / "hrsc"
        for split, images, labels in (
            ("trainval", d.train_images, d.train_labels),
            ("test", d.val_images, d.val_labels),
        ):
            assert (images, labels) == (str(hrsc / split / "AllImages"), str(hrsc / split / "Annotations"))


def test_readme_lists_every_published_config_with_its_map():
    text = (CONFIGS / "README.md").read_text()
    rows = dict(re.findall(r"^\| \[`([^`]+)`\]\([^)]+\) \| ([0-9.]+|-) \|", text, flags=re.M))
    assert sorted(rows) == sorted(EXPECTED)
    # known answers from configs/kld/README.md and configs/rotated_retinanet/README.md (dev-1.x)
    assert rows["rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py"] == "64.55"
    assert rows["kld/rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota.py"] == "69.94"
    assert rows["kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_1x_dota.py"] == "69.86"
    assert rows["rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py"] == "68.42"
    assert rows["kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py"] == "70.22"
    assert rows["kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota.py"] == "71.30"
    assert rows["kld/rotated-retinanet-rbox-le90_r50_fpn_kld_1x_dota.py"] == "-"
    assert rows["rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py"] == "52.06"
    assert rows["kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc.py"] == "54.15"
    assert rows["rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_rr-6x_hrsc.py"] == "45.09"
    assert rows["kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc.py"] == "58.17"


# ------------------------------------------------------------------ overrides and typos


def test_overrides_apply_after_the_file():
    path = CONFIGS / "kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py"
    config = rdet.load_config(path, ["train.lr=0.01", "model.head.loss_bbox.loss_weight=2", "train.milestones=[3, 4]"])
    assert (config.train.lr, config.model.head.loss_bbox.loss_weight, config.train.milestones) == (0.01, 2.0, (3, 4))
    # the file's other values are untouched
    assert (config.train.epochs, config.model.head.loss_bbox.stable) == (12, True)


def test_override_typo_names_the_closest_key():
    config = rdet.load_config(CONFIGS / "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py")
    with pytest.raises(ValueError, match=r"unknown config key 'train\.lrr' \(did you mean 'lr'\?\)"):
        apply_override(config, "train.lrr=0.01")
    with pytest.raises(ValueError, match=r"'model\.head\.loss_bbx' \(did you mean 'loss_bbox'\?\)"):
        rdet.load_config(
            CONFIGS / "kld/rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota.py", ["model.head.loss_bbx.tau=2"]
        )


def test_override_value_of_the_wrong_type_is_an_error():
    with pytest.raises(ValueError, match="train.epochs: expected int"):
        rdet.load_config(
            CONFIGS / "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py", ["train.epochs=twelve"]
        )


def _typo_config(tmp_path: Path) -> Path:
    # a config starting from a published one (by absolute path), with a typo in an assignment
    base = (CONFIGS / "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py").as_posix()
    path = tmp_path / "typo.py"
    path.write_text(f"from rdet.config import load_base\nconfig = load_base({base!r})\nconfig.train.lrr = 0.01\n")
    return path


def test_typo_in_a_config_file_is_an_error_naming_file_and_key(tmp_path):
    path = _typo_config(tmp_path)
    with pytest.raises(ValueError, match=r"typo\.py.*'lrr'"):
        rdet.load_config(path)


def test_typo_in_a_config_file_names_the_closest_key(tmp_path):
    with pytest.raises(ValueError, match=r"did you mean 'lr'"):
        rdet.load_config(_typo_config(tmp_path))


def test_unknown_value_is_rejected_by_validation(tmp_path):
    path = CONFIGS / "kld/rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc.py"
    with pytest.raises(ValueError, match="model.coder.angle_version"):
        rdet.load_config(path, ["model.coder.angle_version=le45"])
    with pytest.raises(ValueError, match="data.img_size"):
        rdet.load_config(path, ["data.img_size=(512, 810)"])  # not divisible by 32


def test_configs_resolve_by_name_and_path():
    by_name = rdet.config.find_config("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota")
    assert by_name == CONFIGS / "kld" / "rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py"
    assert rdet.config.find_config("kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py") == by_name
    assert rdet.config.find_config(by_name) == by_name
    assert rdet.load_config("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota").source == str(by_name)
    with pytest.raises(FileNotFoundError, match="did you mean rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota"):
        rdet.config.find_config("rotated-retinanet-rbox-le90_r50_fpn_kld-stabel_1x_dota")


# ------------------------------------------------------------------ paths: relative to the config file


def test_every_path_of_a_config_file_is_relative_to_that_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base_dir, user_dir = tmp_path / "base", tmp_path / "user" / "exp"
    base_dir.mkdir()
    user_dir.mkdir(parents=True)
    (base_dir / "base.py").write_text(
        "from rdet.config import Config, from_cwd\n"
        "config = Config()\n"
        "config.data.train_images = 'imgs'\n"  # relative to base/
        "config.data.val_images = from_cwd('shared/val')\n"  # relative to the current folder
        "config.model.backbone.weights = '../weights/r50.pth'\n"
    )
    (user_dir / "cfg.py").write_text(
        "from rdet.config import DistillConfig, load_base\n"
        "config = load_base('../../base/base.py')\n"
        "config.data.train_labels = 'labels'\n"  # relative to user/exp/
        "config.train.work_dir = 'runs/a'\n"
        "config.distill = DistillConfig(teacher='teacher.py', teacher_weights='../t/last.pt', cache_dir='cache')\n"
    )
    c = rdet.load_config(user_dir / "cfg.py", ["data.val_labels=val/labels"])  # --set: the current folder
    assert c.data.train_images == str(base_dir / "imgs")
    assert c.data.val_images == str(tmp_path / "shared" / "val")
    assert c.model.backbone.weights == str(tmp_path / "weights" / "r50.pth")
    assert c.data.train_labels == str(user_dir / "labels")
    assert c.train.work_dir == str(user_dir / "runs" / "a")
    assert (c.distill.teacher, c.distill.teacher_weights) == (
        str(user_dir / "teacher.py"),
        str(user_dir.parent / "t/last.pt"),
    )
    assert c.distill.cache_dir == str(user_dir / "cache")
    assert c.data.val_labels == str(tmp_path / "val" / "labels")
    assert sorted(rdet.config.PATH_FIELDS) == sorted(
        f"{s}.{f}"
        for s, f in [("data", "train_images"), ("data", "train_labels"), ("data", "val_images"), ("data", "val_labels")]
        + [("train", "work_dir"), ("model.backbone", "weights")]
        + [("distill", "teacher"), ("distill", "teacher_weights"), ("distill", "cache_dir")]
    )
    # a user config can start from a shipped one by name
    (user_dir / "named.py").write_text(
        "from rdet.config import load_base\nconfig = load_base('rotated-retinanet-rbox-le90_r50_fpn_1x_dota')\n"
    )
    assert rdet.load_config(user_dir / "named.py").data.train_images == str(
        tmp_path / "data/split_ss_dota/trainval/images"
    )


def test_a_missing_data_folder_is_reported_with_its_resolved_path(tmp_path, monkeypatch):
    from rdet.engine.data import build_dataset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cfg.py").write_text(
        "from rdet.config import Config\nconfig = Config()\nconfig.data.train_images = 'nope/images'\n"
    )
    config = rdet.load_config(tmp_path / "sub" / "cfg.py")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "sub" / "nope" / "images"))):
        build_dataset(config, "train")


def test_validation_runs_once(tmp_path, monkeypatch):
    import rdet.config as C
    import rdet.engine.train as T

    calls = []
    real = C.validate
    counting = lambda config: calls.append(1) or real(config)  # noqa: E731
    monkeypatch.setattr(C, "validate", counting)
    monkeypatch.setattr(T, "validate", counting)
    path = CONFIGS / "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py"
    rdet.load_config(path)
    assert len(calls) == 1
    calls.clear()
    T.resolve_config(path, {"lr": 0.01}, ["train.epochs=3"])  # what rdet.train does with a file
    assert len(calls) == 1
    calls.clear()
    T.resolve_config(Config())  # a config built in code
    assert len(calls) == 1
    calls.clear()
    C.from_dict(Config, C.to_dict(Config()))  # checkpoints
    assert len(calls) == 1
    calls.clear()
    rdet.build_model(C.from_dict(Config, C.to_dict(_r18())))  # building does not validate again
    assert len(calls) == 1


def _r18() -> Config:
    c = Config()
    c.model.backbone.depth, c.model.neck.out_channels, c.model.head.feat_channels = 18, 16, 16
    return c


def test_choices_are_checked_at_load_and_in_overrides():
    import typing

    from rdet.boxes import ANGLE_VERSIONS
    from rdet.config import AngleVersion

    assert typing.get_args(AngleVersion) == ANGLE_VERSIONS
    path = CONFIGS / "rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py"
    with pytest.raises(ValueError, match="train.optimizer: 'adam' is not one of 'sgd', 'adamw'"):
        rdet.load_config(path, ["train.optimizer=adam"])
    c = rdet.load_config(path)
    c.model.head.assign_iou = "diagonal"
    with pytest.raises(ValueError, match="model.head.assign_iou: 'diagonal' is not one of 'rotated', 'horizontal'"):
        rdet.config.validate(c)
