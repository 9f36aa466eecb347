"""Teacher of the Rotated RetinaNet LD row: R-34, distribution head (reg_max 8), KLD (GDLoss_v1), 2x, DOTA v1.0.

Reproduces Zzh-tju/Rotated-LD (MMRotate 0.x), branch main:
  configs/kld/rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py, whose _base_ is MMRotate 0.x's
  configs/rotated_retinanet/rotated_retinanet_hbb_r50_fpn_1x_dota_oc.py; rdet starts from that base's
  dev-1.x twin, configs/rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py (same model, anchors,
  coder, assigner and test settings) and sets what the 0.x files change.
Rotated-LD publishes no number for the teacher itself (its README lists the students only).
Kept in configs/ld/ beside its student; the reference keeps it in configs/kld/.
"""

from rdet.config import LossConfig, from_cwd, load_base

NAME = "rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc"
# init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet34'): torchvision's ImageNet weights.
# rdet never downloads: put that file in ./checkpoints/ of the folder rdet runs in.
RESNET34_IMAGENET = from_cwd("checkpoints/resnet34-b627a593.pth")

config = load_base("../rotated_retinanet/rotated-retinanet-hbox-oc_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/Zzh-tju/Rotated-LD/blob/main/configs/kld/{NAME}.py"
m = config.model
# backbone=dict(type='ResNet', depth=34, frozen_stages=1, norm_eval=True, style='pytorch', ...)
m.backbone.depth = 34
m.backbone.frozen_stages = 1
m.backbone.norm_eval = True
m.backbone.weights = RESNET34_IMAGENET
# neck=dict(type='FPN', in_channels=[64, 128, 256, 512], out_channels=256, start_level=1,
#           add_extra_convs='on_input', num_outs=5)  (in_channels follow from the depth)
m.neck.out_channels = 256
# bbox_head=dict(type='RotatedRetinaHeadDistribution', reg_max=8, reg_decoded_bbox=True, ...):
# Integral projects linspace(-2, 2, 9) for x, y, w, h and Integral_angle linspace(-5, 2, 9) for the angle.
m.head.reg_max = 8
m.head.reg_range = (-2.0, 2.0)
m.head.angle_range = (-5.0, 2.0)
m.head.reg_decoded_bbox = True
# loss_bbox=dict(_delete_=True, type='GDLoss_v1', loss_type='kld', fun='log1p', tau=1, loss_weight=1.0)
# GDLoss_v1 ignores avg_factor and MMEngine sums the per-level means: reduction='level_means' (rdet.losses.regression)
m.head.loss_bbox = LossConfig(
    type="kld", stable=False, fun="log1p", tau=1.0, alpha=1.0, sqrt=False, loss_weight=1.0, reduction="level_means"
)
# train_pipeline: RRandomFlip(flip_ratio=[0.25, 0.25, 0.25], direction=['horizontal', 'vertical', 'diagonal'])
config.data.flip = (0.25, 0.25, 0.25)
t = config.train
# optimizer=dict(type='SGD', lr=0.0025, momentum=0.9, weight_decay=0.0001), grad_clip max_norm=35
t.optimizer, t.lr, t.momentum, t.weight_decay, t.grad_clip = "sgd", 0.0025, 0.9, 0.0001, 35.0
# lr_config=dict(policy='step', warmup='linear', warmup_iters=500, warmup_ratio=1.0 / 3, step=[16, 22])
t.warmup_iters, t.warmup_ratio, t.milestones, t.gamma = 500, 1.0 / 3, (16, 22), 0.1
t.epochs = 24  # runner = dict(type='EpochBasedRunner', max_epochs=24)
t.eval_interval = 6  # evaluation = dict(interval=6, metric='mAP')
t.work_dir = from_cwd(f"work_dirs/{NAME}")
