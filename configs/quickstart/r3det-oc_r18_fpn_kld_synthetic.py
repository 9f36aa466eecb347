"""Quickstart: a small R3Det (R-18, narrow heads, one refinement stage) with KLD on synthetic aerial scenes.

Architecture and losses as configs/kld/r3det-oc_r50_fpn_kld_1x_dota.py (oc targets, horizontal-IoU init
assignment, FRM refine stage, GDLoss_v1 KLD in both stages), scaled down like
rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py, whose data and schedule it shares: synthetic
scenes from ``rdet.data.synthetic.make_synthetic_dataset`` in ``./data/synthetic/{train,val}`` of the current folder
(benchmarks/bench_r3det_quickstart.py writes them when missing).
"""

from rdet.config import LossConfig, RefineConfig, from_cwd, load_base

config = load_base("rotated-retinanet-rbox-le90_r18_fpn_kld-stable_synthetic.py")
config.name = "r3det-oc_r18_fpn_kld_synthetic"
config.train.work_dir = from_cwd("work_dirs/quickstart_r3det_synthetic")
m = config.model
m.type = "r3det"
c = m.coder
c.angle_version, c.edge_swap, c.proj_xy, c.norm_factor = "oc", False, False, None
m.head.assign_iou = "horizontal"
m.head.reg_decoded_bbox = True
m.head.loss_bbox = LossConfig(type="kld", stable=False, fun="log1p", tau=1.0, sqrt=False, loss_weight=1.0)
m.refine = RefineConfig(
    num_stages=1,
    stage_loss_weights=(1.0,),
    stacked_convs=2,
    pos_iou_thr=0.6,
    neg_iou_thr=0.5,
    loss_bbox=LossConfig(type="kld", stable=False, fun="log1p", tau=1.0, sqrt=False, loss_weight=1.0),
)
