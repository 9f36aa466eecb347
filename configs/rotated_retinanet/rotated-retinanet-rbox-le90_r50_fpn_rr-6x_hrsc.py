"""Rotated RetinaNet, rotated anchors + rotated-IoU assignment, le90, ResNet-50 FPN, random rotation, 6x, HRSC2016.

Reproduces open-mmlab/mmrotate, branch dev-1.x (commit 3ff004e):
  configs/rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc.py (model, train_pipeline)
  configs/_base_/datasets/hrsc.py, configs/_base_/schedules/schedule_6x.py, configs/_base_/default_runtime.py.
Its model is the one of rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py except num_classes=1 (checked line by
line), so this file starts from that one and changes the data and the schedule.
Published: 52.06 mAP (AP50:95), 84.80 AP50, 58.10 AP75 on HRSC2016 test (configs/rotated_retinanet/README.md).
"""

from rdet.config import from_cwd, load_base

NAME = "rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc"

config = load_base("../rotated_retinanet/rotated-retinanet-rbox-le90_r50_fpn_1x_dota.py")
config.name = NAME
config.reference = f"https://github.com/open-mmlab/mmrotate/blob/dev-1.x/configs/rotated_retinanet/{NAME}.py"
config.train.work_dir = from_cwd(f"work_dirs/{NAME}")

config.model.head.num_classes = 1  # bbox_head.num_classes=1

# _base_/datasets/hrsc.py: HRSCDataset(data_root='data/hrsc/', data_prefix=dict(sub_data_root='FullDataSet/'),
# ann_file='ImageSets/trainval.txt' (train) / 'ImageSets/test.txt' (val and test), classwise=False).
# rdet reads whole folders, so the two image-id lists become two folders (configs/README.md shows how to make
# them from the HRSC2016 release with symbolic links).
d = config.data
d.train_images = from_cwd("data/hrsc/trainval/AllImages")
d.train_labels = from_cwd("data/hrsc/trainval/Annotations")
d.val_images = from_cwd("data/hrsc/test/AllImages")
d.val_labels = from_cwd("data/hrsc/test/Annotations")
d.format = "hrsc"
d.classes = ("ship",)  # HRSCDataset(classwise=False): one class, 'ship'
d.class_list = "hrsc"  # the same list by name (data.classes takes precedence)
# mmdet.Resize(scale=(800, 512), keep_ratio=True): the image is scaled by min(800 / long side, 512 / short side).
# rdet's img_size is (height, width) = (512, 800) (both divisible by 32, no rounding needed) and scales by
# min(800 / width, 512 / height): the same factor for every image with width >= height (HRSC2016's sizes range
# from 300x300 to 1500x900); a portrait image would be capped at 512 px high, not 800 (configs/README.md).
d.img_size = (512, 800)
# train_pipeline: mmdet.RandomFlip(prob=0.75, direction=['horizontal', 'vertical', 'diagonal']) -> 0.25 each,
# then RandomRotate(prob=0.5, angle_range=180): angle uniform in [-180, 180) degrees, rect_obj_labels=None.
d.flip = (0.25, 0.25, 0.25)
d.rotate_prob = 0.5
d.rotate_range = 180.0
d.filter_empty = True  # filter_cfg=dict(filter_empty_gt=True)

# _base_/schedules/schedule_6x.py: max_epochs=72, LinearLR(start_factor=1.0 / 3, end=500 iters),
# MultiStepLR(milestones=[48, 66], gamma=0.1), SGD(lr=0.0025, momentum=0.9, weight_decay=0.0001),
# clip_grad=dict(max_norm=35, norm_type=2); val_interval=1. Values equal to schedule_1x are restated.
t = config.train
t.epochs = 72
t.milestones = (48, 66)
t.gamma = 0.1
t.optimizer = "sgd"
t.lr = 0.0025
t.momentum = 0.9
t.weight_decay = 0.0001
t.warmup_iters = 500
t.warmup_ratio = 1.0 / 3
t.grad_clip = 35.0
t.eval_interval = 1
