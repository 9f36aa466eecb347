"""Teacher of the GWD LD row: R-34, distribution head (reg_max 8), GWD (GDLoss, weight 5), 2x, DOTA v1.0.

Reproduces Zzh-tju/Rotated-LD (MMRotate 0.x), branch main:
  configs/gwd/rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc.py. Everything but the loss and the
  evaluation interval equals the KLD teacher, rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py
  (next to this file), which this file starts from.
Kept in configs/ld/ beside its student; the reference keeps it in configs/gwd/.
"""

from rdet.config import LossConfig, from_cwd, load_base

NAME = "rotated_retinanet_distribution_hbb_gwd_r34_fpn_2x_dota_oc"

config = load_base("../ld/rotated_retinanet_distribution_hbb_kld_r34_fpn_2x_dota_oc.py")
config.name = NAME
config.reference = f"https://github.com/Zzh-tju/Rotated-LD/blob/main/configs/gwd/{NAME}.py"
# loss_bbox=dict(type='GDLoss', loss_type='gwd', loss_weight=5.0): GDLoss's defaults fun='log1p', tau=0,
# alpha=1 and the normalised distance.
config.model.head.loss_bbox = LossConfig(
    type="gwd", stable=True, fun="log1p", tau=0.0, alpha=1.0, normalize=True, loss_weight=5.0
)
config.train.eval_interval = 12  # evaluation = dict(interval=12, metric='mAP')
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")
