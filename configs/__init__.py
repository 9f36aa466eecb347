"""The configs shipped with rdet, one file per published MMRotate setting (see README.md here).

Installed as ``rdet.configs``; resolve one by name with :func:`rdet.config.find_config`
(``find_config("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota")``) or load it with
:func:`rdet.config.load_config`, which accepts names and paths.
"""
