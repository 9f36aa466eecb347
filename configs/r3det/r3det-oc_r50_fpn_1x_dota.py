"""R3Det, oc targets, ResNet-50 FPN, 1x, DOTA v1.0: one refinement stage, smooth-L1 (beta 0.11) baseline.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/r3det/r3det-oc_r50_fpn_1x_dota.py (model), with the same _base_ files as the Rotated RetinaNet
  configs: configs/_base_/datasets/dota.py, configs/_base_/schedules/schedule_1x.py,
  configs/_base_/default_runtime.py (taken here from
  ../rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py).
Published: 69.80 mAP on DOTA v1.0 test, 12.4 fps (configs/r3det/README.md, configs/kld/README.md), trained with
0.x's configs/r3det/r3det_r50_fpn_1x_dota_oc.py (checkpoint r3det_r50_fpn_1x_dota_oc-b1fb045c.pth).

Known differences between dev-1.x and 0.x (we follow 0.x, which produced the number):
* init-stage assignment: 0.x's RotatedRetinaHead defaults to assign_by_circumhbbox='oc', i.e. the anchors are
  matched to the horizontal boxes enclosing the ground truth (horizontal IoU); dev-1.x writes
  iou_calculator=dict(type='RBboxOverlaps2D') with no circumscribed-box step (rotated IoU). Set
  ``config.model.head.assign_iou = "rotated"`` for dev-1.x's behaviour.
* anchors: angle 0 as 0.x (dev-1.x's FakeRotatedAnchorGenerator(angle_version='oc') regularises them, see
  configs/README.md "Not expressible").
Reproduced as the published checkpoints compute, not expressible as config fields (constants in
rdet/models/r3det.py): the FRM samples only the refined box's centre (mmcv rotated_feature_align's default
points=1) and at mmcv's transposed (cy, cx) position; refine-stage coder and focal loss equal the init stage's.
"""

from rdet.config import (
    AnchorConfig,
    BackboneConfig,
    CoderConfig,
    FocalConfig,
    HeadConfig,
    LossConfig,
    ModelConfig,
    NeckConfig,
    RefineConfig,
    TestConfig,
    from_cwd,
    load_base,
)

NAME = "r3det-oc_r50_fpn_1x_dota"

# Data (_base_/datasets/dota.py: RandomFlip 0.25 h/v/d, 1024 px), schedule (SGD 0.0025, 12 epochs, steps 8 and
# 11, warm-up 500 from 1/3, clip 35) and runtime are those of the Rotated RetinaNet base.
config = load_base("../rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/r3det/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")
RESNET50_IMAGENET = config.model.backbone.weights

config.model = ModelConfig(
    type="r3det",  # type='RefineSingleStageDetector'
    # backbone=dict(type='mmdet.ResNet', depth=50, frozen_stages=1, norm_eval=True, style='pytorch',
    #               init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50'))
    backbone=BackboneConfig(depth=50, frozen_stages=1, norm_eval=True, weights=RESNET50_IMAGENET),
    # neck=dict(type='mmdet.FPN', out_channels=256, start_level=1, add_extra_convs='on_input', num_outs=5)
    neck=NeckConfig(out_channels=256, start_level=1, num_outs=5, add_extra_convs="on_input"),
    # bbox_head_init.anchor_generator=dict(type='FakeRotatedAnchorGenerator', angle_version='oc',
    #     octave_base_scale=4, scales_per_octave=3, ratios=[1.0, 0.5, 2.0], strides=[8, 16, 32, 64, 128]);
    # bbox_head_refine[0].frm_cfg=dict(type='FRM', feat_channels=256, strides=[8, 16, 32, 64, 128]) uses the
    # same strides (rdet takes the FRM's strides from here).
    anchors=AnchorConfig(
        octave_base_scale=4.0, scales_per_octave=3, ratios=(1.0, 0.5, 2.0), strides=(8, 16, 32, 64, 128)
    ),
    # bbox_coder=dict(type='DeltaXYWHTRBBoxCoder', angle_version='oc', norm_factor=None, edge_swap=False,
    #                 proj_xy=False, target_means=(.0, .0, .0, .0, .0), target_stds=(1.0, 1.0, 1.0, 1.0, 1.0)),
    # identical in bbox_head_init and bbox_head_refine[0].
    coder=CoderConfig(
        angle_version="oc",
        edge_swap=False,
        proj_xy=False,
        norm_factor=None,
        means=(0.0, 0.0, 0.0, 0.0, 0.0),
        stds=(1.0, 1.0, 1.0, 1.0, 1.0),
        wh_ratio_clip=16 / 1000,
    ),
    head=HeadConfig(  # bbox_head_init=dict(type='R3Head', ...)
        num_classes=15,  # num_classes=15 (DOTA v1.0)
        stacked_convs=4,
        feat_channels=256,  # stacked_convs=4, feat_channels=256
        # train_cfg.init.assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
        #                              min_pos_iou=0, ignore_iof_thr=-1, ...); horizontal IoU: see the docstring.
        assign_iou="horizontal",
        pos_iou_thr=0.5,
        neg_iou_thr=0.4,
        min_pos_iou=0.0,
        reg_decoded_bbox=False,
        reg_max=0,
        # loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        # also the refine stage's loss_cls
        loss_cls=FocalConfig(gamma=2.0, alpha=0.25, loss_weight=1.0),
        # loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=0.11, loss_weight=1.0)
        loss_bbox=LossConfig(type="smooth_l1", beta=0.11, loss_weight=1.0),
    ),
    refine=RefineConfig(  # bbox_head_refine=[dict(type='R3RefineHead', ...)]
        num_stages=1,  # one R3RefineHead
        stage_loss_weights=(1.0,),  # train_cfg.stage_loss_weights=[1.0]
        stacked_convs=4,  # stacked_convs=4 (feat_channels=256 as the init head)
        # train_cfg.refine[0].assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.6, neg_iou_thr=0.5,
        #     min_pos_iou=0, ignore_iof_thr=-1, iou_calculator=dict(type='RBboxOverlaps2D'))
        pos_iou_thr=0.6,
        neg_iou_thr=0.5,
        # loss_bbox=dict(type='mmdet.SmoothL1Loss', beta=0.11, loss_weight=1.0)
        loss_bbox=LossConfig(type="smooth_l1", beta=0.11, loss_weight=1.0),
    ),
    # test_cfg=dict(nms_pre=2000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms_rotated',
    #               iou_threshold=0.1), max_per_img=2000)
    test=TestConfig(nms_pre=2000, score_thr=0.05, iou_thr=0.1, max_per_img=2000),
)
