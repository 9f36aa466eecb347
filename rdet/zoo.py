"""The model zoo: MMRotate's published checkpoints of the KLD results table, loadable by name.

``rdet.load_checkpoint("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota")`` (and ``--model NAME`` in
``rdet predict/serve/export/eval``) finds the name here, downloads the file once into the cache
(:mod:`rdet.hub`: ``$RDET_HOME/checkpoints``, progress bar, resume, sha256-prefix check), imports the MMRotate
0.x weights (:mod:`rdet.mmrotate`) and builds the rdet config of the same name with the 0.x settings that
trained the file (:func:`config`). ``rdet zoo`` lists the entries; ``rdet zoo download NAME`` fetches one.

Each name is the MMRotate dev-1.x config name, which is also the name of the shipped rdet config. The numbers
are MMRotate's published ones (``configs/kld/README.md``): DOTA v1.0 test-server mAP (AP50), or HRSC2016 test
mAP (AP50:95) with AP50 and AP75; fps on one RTX 2080 Ti (batch 1, fp32, NMS included). rdet did not measure
them. Offline, or to use a mirror, set ``RDET_ZOO_URL`` (the base URL that replaces
:data:`DEFAULT_BASE_URL`), or put the file in the cache folder yourself: the error says where.

This module imports no torch at module level (``rdet zoo`` stays fast).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rdet import hub

DEFAULT_BASE_URL = "https://download.openmmlab.com/mmrotate/v0.1.0"


@dataclass(frozen=True)
class ZooEntry:
    """One published checkpoint.

    Attributes:
        name: MMRotate dev-1.x config name; also the rdet config that builds the model (unless ``config``).
        dataset: ``'DOTA v1.0'`` or ``'HRSC2016'``.
        map: published mAP (DOTA: AP50 on the test server; HRSC: AP50:95 on the test set).
        angle: angle version of the model's coder (``'oc'`` or ``'le90'``).
        fps: published inference speed (RTX 2080 Ti, batch 1, fp32, NMS included).
        path: the file's path below the zoo base URL; its name ends in the file's sha256 prefix.
        ap50, ap75: HRSC's AP50 and AP75.
        config: rdet config name when it differs from ``name``.
        overrides: ``--set`` overrides that give the settings of MMRotate 0.x, which trained the file, where
            the dev-1.x config (and so rdet's) differs.
        mmrotate: MMRotate version that wrote the checkpoint.
        note: what a user should know about this entry.
    """

    name: str
    dataset: str
    map: float
    angle: str
    fps: float
    path: str
    ap50: float | None = None
    ap75: float | None = None
    config: str = ""
    overrides: tuple[str, ...] = ()
    mmrotate: str = "0.x"
    note: str = ""

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def sha256(self) -> str:
        """The sha256 prefix the file name ends with."""
        prefix = hub.sha256_prefix(self.filename)
        assert prefix is not None, self.filename
        return prefix

    @property
    def config_name(self) -> str:
        return self.config or self.name

    @property
    def published(self) -> str:
        """The published accuracy as printed by ``rdet zoo``: ``70.22`` or ``52.06 / 84.80 / 58.10``."""
        if self.ap50 is None:
            return f"{self.map:.2f}"
        return f"{self.map:.2f} / {self.ap50:.2f} / {self.ap75:.2f}"


# 0.x's rotated_retinanet_hbb_*_6x_hrsc_rr_oc.py used edge_swap=False, proj_xy=False; dev-1.x (and rdet's
# config of the same name) has True/True. The checkpoints' deltas are relative to the 0.x coder.
_HRSC_OC_0X = ("model.coder.edge_swap=False", "model.coder.proj_xy=False")

ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry("rotated-retinanet-hbox-oc_r50_fpn_1x_dota", "DOTA v1.0", 64.55, "oc", 15.7,
             "rotated_retinanet/rotated_retinanet_hbb_r50_fpn_1x_dota_oc/"
             "rotated_retinanet_hbb_r50_fpn_1x_dota_oc-e8a7c7df.pth"),
    ZooEntry("rotated-retinanet-hbox-oc_r50_fpn_kld_1x_dota", "DOTA v1.0", 69.94, "oc", 15.6,
             "kld/rotated_retinanet_hbb_kld_r50_fpn_1x_dota_oc/rotated_retinanet_hbb_kld_r50_fpn_1x_dota_oc-49c1f937.pth"),
    ZooEntry("rotated-retinanet-hbox-oc_r50_fpn_kld-stable_1x_dota", "DOTA v1.0", 69.86, "oc", 15.8,
             "kld/rotated_retinanet_hbb_kld_stable_r50_fpn_1x_dota_oc/"
             "rotated_retinanet_hbb_kld_stable_r50_fpn_1x_dota_oc-92a76443.pth"),
    ZooEntry("rotated-retinanet-rbox-le90_r50_fpn_1x_dota", "DOTA v1.0", 68.42, "le90", 16.9,
             "rotated_retinanet/rotated_retinanet_obb_r50_fpn_1x_dota_le90/"
             "rotated_retinanet_obb_r50_fpn_1x_dota_le90-c0097bc4.pth"),
    ZooEntry("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_1x_dota", "DOTA v1.0", 70.22, "le90", 16.9,
             "kld/rotated_retinanet_obb_kld_stable_r50_fpn_1x_dota_le90/"
             "rotated_retinanet_obb_kld_stable_r50_fpn_1x_dota_le90-31193e00.pth"),
    ZooEntry("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_adamw-1x_dota", "DOTA v1.0", 71.30, "le90", 16.9,
             "kld/rotated_retinanet_obb_kld_stable_r50_adamw_fpn_1x_dota_le90/"
             "rotated_retinanet_obb_kld_stable_r50_adamw_fpn_1x_dota_le90-474d9955.pth"),
    ZooEntry("r3det-oc_r50_fpn_1x_dota", "DOTA v1.0", 69.80, "oc", 12.4,
             "r3det/r3det_r50_fpn_1x_dota_oc/r3det_r50_fpn_1x_dota_oc-b1fb045c.pth"),
    ZooEntry("r3det-oc_r50_fpn_kld_1x_dota", "DOTA v1.0", 71.83, "oc", 12.4,
             "kld/r3det_kld_r50_fpn_1x_dota_oc/r3det_kld_r50_fpn_1x_dota_oc-31866226.pth",
             note="MMRotate's table prints this row under the kld-stable config, but its weights "
                  "(r3det_kld_r50_fpn_1x_dota_oc) were trained with plain KLD (GDLoss_v1): this config"),
    ZooEntry("r3det-oc_r50_fpn_kld-stable_1x_dota", "DOTA v1.0", 72.12, "oc", 13.5,
             "kld/r3det_kld_stable_r50_fpn_1x_dota_oc/r3det_kld_stable_r50_fpn_1x_dota_oc-e011059d.pth"),
    ZooEntry("r3det-tiny-oc_r50_fpn_1x_dota", "DOTA v1.0", 70.18, "oc", 15.6,
             "r3det/r3det_tiny_r50_fpn_1x_dota_oc/r3det_tiny_r50_fpn_1x_dota_oc-c98a616c.pth"),
    ZooEntry("r3det-tiny-oc_r50_fpn_kld_1x_dota", "DOTA v1.0", 72.76, "oc", 14.0,
             "kld/r3det_tiny_kld_r50_fpn_1x_dota_oc/r3det_tiny_kld_r50_fpn_1x_dota_oc-589e142a.pth"),
    ZooEntry("rotated-retinanet-rbox-le90_r50_fpn_rr-6x_hrsc", "HRSC2016", 52.06, "le90", 38.2,
             "rotated_retinanet/rotated_retinanet_obb_r50_fpn_6x_hrsc_rr_le90/"
             "rotated_retinanet_obb_r50_fpn_6x_hrsc_rr_le90-ee4f18af.pth", ap50=84.80, ap75=58.10),
    ZooEntry("rotated-retinanet-rbox-le90_r50_fpn_kld-stable_rr-6x_hrsc", "HRSC2016", 54.15, "le90", 38.2,
             "kld/rotated_retinanet_obb_kld_stable_r50_fpn_6x_hrsc_rr_le90/"
             "rotated_retinanet_obb_kld_stable_r50_fpn_6x_hrsc_rr_le90-58665364.pth", ap50=86.20, ap75=60.60),
    ZooEntry("rotated-retinanet-hbox-oc_r50_fpn_rr-6x_hrsc", "HRSC2016", 45.09, "oc", 39.2,
             "rotated_retinanet/rotated_retinanet_hbb_r50_fpn_6x_hrsc_rr_oc/"
             "rotated_retinanet_hbb_r50_fpn_6x_hrsc_rr_oc-f37eada6.pth", ap50=79.30, ap75=46.90,
             overrides=_HRSC_OC_0X, note="0.x coder: edge_swap=False, proj_xy=False (dev-1.x config: True)"),
    ZooEntry("rotated-retinanet-hbox-oc_r50_fpn_kld-stable_rr-6x_hrsc", "HRSC2016", 58.17, "oc", 39.5,
             "kld/rotated_retinanet_hbb_kld_stable_r50_fpn_6x_hrsc_rr_oc/"
             "rotated_retinanet_hbb_kld_stable_r50_fpn_6x_hrsc_rr_oc-9a4ac8e2.pth", ap50=87.00, ap75=69.30,
             overrides=_HRSC_OC_0X, note="0.x coder: edge_swap=False, proj_xy=False (dev-1.x config: True)"),
)  # fmt: skip


def names() -> list[str]:
    return [e.name for e in ENTRIES]


def is_name(text: str | os.PathLike) -> bool:
    """True if ``text`` is a zoo name (a plain name, not a path)."""
    return str(text) in {e.name for e in ENTRIES}


def get(name: str) -> ZooEntry:
    """The entry called ``name``; an unknown name raises ``ValueError`` with the closest names."""
    for entry in ENTRIES:
        if entry.name == name:
            return entry
    close = difflib.get_close_matches(str(name), names(), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; 'rdet zoo' lists the published models"
    raise ValueError(f"no published model named {name!r}{hint}")


def base_url(base: str | None = None) -> str:
    """The zoo's base URL: ``base``, else ``$RDET_ZOO_URL``, else :data:`DEFAULT_BASE_URL`."""
    return (base or os.environ.get("RDET_ZOO_URL") or DEFAULT_BASE_URL).rstrip("/")


def url(name: str, base: str | None = None) -> str:
    return f"{base_url(base)}/{get(name).path}"


def cache_path(name: str) -> Path:
    """Where the file of ``name`` lives in the cache (``$RDET_HOME/checkpoints/<published file name>``)."""
    return hub.cache_dir() / "checkpoints" / get(name).filename


def cached(name: str) -> Path | None:
    """The cached file of ``name``, or None if it has not been downloaded."""
    path = cache_path(name)
    return path if path.is_file() else None


def resolve(name: str, *, base: str | None = None, progress: bool = True) -> Path:
    """The local file of ``name``: the cached one, else downloaded (once) and checked.

    Raises:
        ValueError: not a zoo name.
        rdet.hub.DownloadError: offline or cut (the message says which URL to fetch and where to put it);
            ``rdet.hub.ChecksumError`` if the bytes do not match the sha256 prefix of the file name.
    """
    entry = get(name)
    return hub.download(url(name, base), cache_path(name), sha256=entry.sha256, progress=progress)


def config(name: str):
    """The rdet :class:`~rdet.config.Config` of a zoo model: the shipped config of that name with the 0.x
    settings of the file (``ZooEntry.overrides``) and no backbone weights (the checkpoint holds them)."""
    from rdet.config import find_config, load_config

    entry = get(name)
    cfg = load_config(find_config(entry.config_name), list(entry.overrides))
    cfg.model.backbone.weights = None
    return cfg


# ----------------------------------------------------------------------------------------------- CLI
def _size(path: Path) -> str:
    size = float(path.stat().st_size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def table() -> str:
    """The zoo as a text table: name, dataset, published mAP, angle, published fps, cached size or 'not cached'."""
    rows = [("name", "dataset", "mAP (published)", "angle", "fps (2080 Ti)", "cached")]
    for e in ENTRIES:
        path = cached(e.name)
        rows.append((e.name, e.dataset, e.published, e.angle, f"{e.fps:.1f}", _size(path) if path else "not cached"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rdet zoo",
        description="MMRotate's published checkpoints (KLD results table), loadable by name with --model NAME. "
        "mAP is the published number: DOTA v1.0 test AP50, or HRSC2016 mAP / AP50 / AP75.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("list", help="list the published models (the default)")
    d = sub.add_parser("download", help="download checkpoints into the cache and print where they are")
    d.add_argument("names", nargs="+", metavar="NAME", help="zoo names ('rdet zoo' lists them), or 'all'")
    d.add_argument("--url", default=None, help="base URL of a mirror (default: $RDET_ZOO_URL or MMRotate's server)")
    w = sub.add_parser("path", help="print where a model's file is (or would be) cached, and its URL")
    w.add_argument("names", nargs="+", metavar="NAME")
    return p


def cli(argv: list[str]) -> int:
    """``rdet zoo [list]``, ``rdet zoo download NAME...``, ``rdet zoo path NAME...``; returns the exit status."""
    args = parser().parse_args(argv)
    try:
        if args.command in (None, "list"):
            print(table())
            print(f"\ncache: {hub.cache_dir() / 'checkpoints'} (set RDET_HOME to move it)")
            return 0
        wanted = names() if args.names == ["all"] else args.names
        for name in wanted:
            get(name)  # every name checked before any download
        for name in wanted:
            if args.command == "path":
                print(f"{name}: {cache_path(name)} ({'cached' if cached(name) else 'not cached'}; {url(name)})")
            else:
                print(f"{name}: {resolve(name, base=args.url)}")
    except (ValueError, hub.DownloadError) as e:
        print(f"rdet zoo: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nrdet zoo: interrupted; the partial download is kept and resumes next time", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
