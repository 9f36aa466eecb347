"""Quickstart on real data: a small Rotated RetinaNet (R-18, 64-channel FPN/head) with KLD-stable, trained from
scratch on the bundled DOTA samples cut into 512 px tiles; used by ``make demo`` (``rdet/demo.py`` prepares the
tiles in ``demo_out/data``).

Held out for evaluation: DOTA8's tile P0861 (105 ships, 5 harbours), never seen in training. The budget is
sized for a 2-core CPU (about 10 minutes of training, so that ``make demo`` with its set-up fits in ~15 minutes).
No ImageNet weights are available offline and the model starts from random weights, so the held-out AP is near
zero: this demonstrates the pipeline on real imagery, it is not a usable detector.
"""

from rdet.config import Config, LossConfig, from_cwd

config = Config(
    name="rotated-retinanet-rbox-le90_r18_fpn_kld-stable_dota-samples",
    reference="configs/kld/rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota.py (scaled down)",
)
m = config.model
m.backbone.depth = 18
m.backbone.frozen_stages = 0  # trained from scratch: nothing to freeze
m.backbone.norm_eval = False
m.neck.out_channels = 64
m.head.feat_channels = 64
m.head.stacked_convs = 2
m.anchors.octave_base_scale = 2.0  # 16 px smallest anchors: DOTA ships and vehicles are often 10-30 px
m.head.reg_decoded_bbox = True
m.head.loss_bbox = LossConfig(type="kld", stable=True, fun="log1p", tau=1.0, sqrt=False, loss_weight=5.5)
m.test.score_thr = 0.05
d = config.data
d.class_list = "dota1.0"
d.train_images = from_cwd("demo_out/data/train/images")
d.train_labels = from_cwd("demo_out/data/train/labelTxt")
d.val_images = from_cwd("demo_out/data/val/images")
d.val_labels = from_cwd("demo_out/data/val/labelTxt")
d.img_size = (512, 512)
d.flip = (0.25, 0.25, 0.25)
t = config.train
t.optimizer = "adamw"
t.lr = 1e-3
t.weight_decay = 0.05
t.batch_size = 4
t.workers = 1
t.max_iters = 300
t.warmup_iters = 30
t.milestones = (240,)
t.eval_interval = 0
t.log_interval = 10
t.work_dir = from_cwd("demo_out/train")
