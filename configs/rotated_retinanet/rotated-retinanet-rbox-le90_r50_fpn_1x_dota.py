"""Rotated RetinaNet, rotated anchors + rotated-IoU assignment, le90 targets, ResNet-50 FPN, 1x, DOTA v1.0.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py (model)
  configs/_base_/datasets/dota.py (data), configs/_base_/schedules/schedule_1x.py (schedule),
  configs/_base_/default_runtime.py (logging, checkpoints).
Published: 68.42 mAP on DOTA v1.0 test (configs/rotated_retinanet/README.md, configs/kld/README.md).
Every value is written out, also where it equals the rdet default, so a changed default cannot change it.
Published settings the schema cannot express are listed in configs/README.md ("Not expressible").
"""

from rdet.config import (
    AnchorConfig,
    BackboneConfig,
    CoderConfig,
    Config,
    DataConfig,
    FocalConfig,
    HeadConfig,
    LossConfig,
    ModelConfig,
    NeckConfig,
    TestConfig,
    TrainConfig,
    from_cwd,
)

NAME = "rotated-retinanet-rbox-le90_r50_fpn_1x_dota"
# model.backbone.init_cfg = Pretrained('torchvision://resnet50'): mmengine resolves it to torchvision's ImageNet
# weights resnet50-0676ba61.pth. rdet never downloads: put that file in ./checkpoints/ of the folder rdet runs in.
RESNET50_IMAGENET = from_cwd("checkpoints/resnet50-0676ba61.pth")
DATA_ROOT = from_cwd("data/split_ss_dota/")

config = Config(
    name=NAME,
    reference=f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/rotated_retinanet/{NAME}.py",
    model=ModelConfig(
        type="rotated_retinanet",  # type='mmdet.RetinaNet'
        # backbone=dict(type='mmdet.ResNet', depth=50, frozen_stages=1, norm_eval=True, style='pytorch')
        backbone=BackboneConfig(depth=50, frozen_stages=1, norm_eval=True, weights=RESNET50_IMAGENET),
        # neck=dict(type='mmdet.FPN', out_channels=256, start_level=1, add_extra_convs='on_input', num_outs=5)
        neck=NeckConfig(out_channels=256, start_level=1, num_outs=5, add_extra_convs="on_input"),
        # anchor_generator=dict(type='FakeRotatedAnchorGenerator', octave_base_scale=4, scales_per_octave=3,
        #                       ratios=[1.0, 0.5, 2.0], strides=[8, 16, 32, 64, 128])
        anchors=AnchorConfig(
            octave_base_scale=4.0, scales_per_octave=3, ratios=(1.0, 0.5, 2.0), strides=(8, 16, 32, 64, 128)
        ),
        # bbox_coder=dict(type='DeltaXYWHTRBBoxCoder', angle_version='le90', norm_factor=None, edge_swap=True,
        #                 proj_xy=True, target_means=(.0, .0, .0, .0, .0), target_stds=(1.0, 1.0, 1.0, 1.0, 1.0))
        coder=CoderConfig(
            angle_version="le90",
            edge_swap=True,
            proj_xy=True,
            norm_factor=None,
            means=(0.0, 0.0, 0.0, 0.0, 0.0),
            stds=(1.0, 1.0, 1.0, 1.0, 1.0),
            wh_ratio_clip=16 / 1000,
        ),
        head=HeadConfig(
            num_classes=15,  # bbox_head.num_classes=15 (DOTA v1.0)
            stacked_convs=4,
            feat_channels=256,  # bbox_head.stacked_convs=4, feat_channels=256
            # train_cfg.assigner=dict(type='mmdet.MaxIoUAssigner', pos_iou_thr=0.5, neg_iou_thr=0.4,
            #                         min_pos_iou=0, ignore_iof_thr=-1, iou_calculator=dict(type='RBboxOverlaps2D'))
            assign_iou="rotated",
            pos_iou_thr=0.5,
            neg_iou_thr=0.4,
            min_pos_iou=0.0,
            reg_decoded_bbox=False,  # RetinaHead default; the Gaussian-loss configs set True
            reg_max=0,
            # loss_cls=dict(type='mmdet.FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0)
            loss_cls=FocalConfig(gamma=2.0, alpha=0.25, loss_weight=1.0),
            loss_bbox=LossConfig(type="l1", loss_weight=1.0),  # loss_bbox=dict(type='mmdet.L1Loss', loss_weight=1.0)
        ),
        # test_cfg=dict(nms_pre=2000, min_bbox_size=0, score_thr=0.05, nms=dict(type='nms_rotated',
        #               iou_threshold=0.1), max_per_img=2000)
        test=TestConfig(nms_pre=2000, score_thr=0.05, iou_thr=0.1, max_per_img=2000),
    ),
    # _base_/datasets/dota.py: data_root='data/split_ss_dota/' (MMRotate: relative to the folder it runs in; here
    # the same through from_cwd), made by MMRotate's single-scale splitter (1024 px, gap 200).
    data=DataConfig(
        train_images=DATA_ROOT + "trainval/images",  # data_prefix=dict(img_path='trainval/images/')
        train_labels=DATA_ROOT + "trainval/annfiles",  # ann_file='trainval/annfiles/'
        # val_dataloader uses the *trainval* split too (the DOTA test labels are not public; test mAP comes from
        # the evaluation server with the commented-out test_dataloader).
        val_images=DATA_ROOT + "trainval/images",
        val_labels=DATA_ROOT + "trainval/annfiles",
        format="dota",  # dataset_type='DOTADataset'
        classes=(),
        class_list="dota1.0",  # DOTADataset METAINFO: the 15 DOTA v1.0 classes
        img_size=(1024, 1024),  # mmdet.Resize(scale=(1024, 1024), keep_ratio=True)
        # mmdet.RandomFlip(prob=0.75, direction=['horizontal', 'vertical', 'diagonal']): 0.25 each
        flip=(0.25, 0.25, 0.25),
        rotate_prob=0.0,
        rotate_range=180.0,  # no RandomRotate in this pipeline
        filter_empty=True,  # filter_cfg=dict(filter_empty_gt=True)
    ),
    train=TrainConfig(
        epochs=12,  # train_cfg=dict(max_epochs=12, val_interval=1)
        max_iters=0,
        batch_size=2,
        workers=2,  # train_dataloader=dict(batch_size=2, num_workers=2), 1 GPU
        optimizer="sgd",
        lr=0.0025,
        momentum=0.9,
        weight_decay=0.0001,  # SGD(lr=0.0025, momentum=0.9, wd=1e-4)
        betas=(0.9, 0.999),  # unused by SGD
        warmup_iters=500,
        warmup_ratio=1.0 / 3,  # LinearLR(start_factor=1.0 / 3, by_epoch=False, end=500)
        milestones=(8, 11),
        gamma=0.1,  # MultiStepLR(milestones=[8, 11], gamma=0.1, by_epoch=True)
        grad_clip=35.0,  # clip_grad=dict(max_norm=35, norm_type=2)
        amp=False,  # OptimWrapper (fp32); the AMP variant is a separate config
        seed=0,  # default_runtime sets no seed (random); fixed here
        deterministic=False,  # env_cfg.cudnn_benchmark=False
        eval_interval=1,  # val_interval=1
        log_interval=50,  # LoggerHook(interval=50)
        work_dir=from_cwd(f"work_dirs/{NAME}"),  # mmengine's default work_dirs/<config name>
        device="auto",
    ),
)
