"""Class lists of the public oriented-detection datasets, in the order their official tools number them.

The DOTA lists nest: v1.5 appends ``container-crane`` to v1.0, and v2.0 appends ``airport`` and
``helipad`` to v1.5, so a v1.0 class has the same id in all three. DIOR-R names are lower-case (its
XML files spell some names with capitals; the reader lower-cases them, as MMRotate does). HRSC2016 is
used either as one class (``ship``, the common "HRSC L1" setting) or with MMRotate's 31 fine classes,
addressed through the ``Class_ID`` codes of the XML files.
"""

from __future__ import annotations

import os

DOTA1_0 = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
DOTA1_5 = DOTA1_0 + ("container-crane",)
DOTA2_0 = DOTA1_5 + ("airport", "helipad")

DIOR_R = (
    "airplane",
    "airport",
    "baseballfield",
    "basketballcourt",
    "bridge",
    "chimney",
    "expressway-service-area",
    "expressway-toll-station",
    "dam",
    "golffield",
    "groundtrackfield",
    "harbor",
    "overpass",
    "ship",
    "stadium",
    "storagetank",
    "tenniscourt",
    "trainstation",
    "vehicle",
    "windmill",
)

HRSC = ("ship",)
# MMRotate's "classwise" HRSC2016: class names and the two-digit codes behind Class_ID = '1' + '0'*6 + code.
HRSC_CLASSWISE = (
    "ship",
    "aircraft carrier",
    "warcraft",
    "merchant ship",
    "Nimitz",
    "Enterprise",
    "Arleigh Burke",
    "WhidbeyIsland",
    "Perry",
    "Sanantonio",
    "Ticonderoga",
    "Kitty Hawk",
    "Kuznetsov",
    "Abukuma",
    "Austen",
    "Tarawa",
    "Blue Ridge",
    "Container",
    "OXo|--)",
    "Car carrier([]==[])",
    "Hovercraft",
    "yacht",
    "CntShip(_|.--.--|_]=",
    "Cruise",
    "submarine",
    "lute",
    "Medical",
    "Car carrier(======|",
    "Ford-class",
    "Midway-class",
    "Invincible-class",
)
HRSC_CLASSWISE_CODES = (
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "07",
    "08",
    "09",
    "10",
    "11",
    "12",
    "13",
    "14",
    "15",
    "16",
    "17",
    "18",
    "19",
    "20",
    "22",
    "24",
    "25",
    "26",
    "27",
    "28",
    "29",
    "30",
    "31",
    "32",
    "33",
)
HRSC_CLASS_IDS = {"1" + "0" * 6 + code: i for i, code in enumerate(HRSC_CLASSWISE_CODES)}

# Classes of rdet.data.synthetic (DOTA names, so its labelTxt files are valid DOTA files).
SYNTHETIC = ("plane", "ship", "small-vehicle", "storage-tank")

CLASS_LISTS: dict[str, tuple[str, ...]] = {
    "dota1.0": DOTA1_0,
    "dota1.5": DOTA1_5,
    "dota2.0": DOTA2_0,
    "dior-r": DIOR_R,
    "hrsc": HRSC,
    "hrsc-classwise": HRSC_CLASSWISE,
    "synthetic": SYNTHETIC,
}


def get_classes(name: str) -> tuple[str, ...]:
    """Class list by dataset name (``'dota1.0'``, ``'dota1.5'``, ``'dota2.0'``, ``'dior-r'``, ``'hrsc'``,
    ``'hrsc-classwise'``, ``'synthetic'``); raises ``ValueError`` listing the names for anything else."""
    key = name.lower()
    key = {
        "dota": "dota1.0",
        "dota1": "dota1.0",
        "dotav1.0": "dota1.0",
        "dotav1.5": "dota1.5",
        "dota2": "dota2.0",
        "dotav2.0": "dota2.0",
        "dior": "dior-r",
        "hrsc2016": "hrsc",
    }.get(key, key)
    if key not in CLASS_LISTS:
        raise ValueError(f"unknown class list {name!r}; known: {', '.join(CLASS_LISTS)}")
    return CLASS_LISTS[key]


def normalize_name(name: str) -> str:
    """Key used to match class names across formats: lower case, and spaces, underscores and hyphens are
    the same (YOLO's ``'storage tank'`` matches DOTA's ``'storage-tank'``)."""
    return "-".join(name.lower().replace("_", " ").replace("-", " ").split())


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Class names from a file: a YOLO dataset YAML (``names:`` as a mapping ``0: plane`` or a list; read with
    PyYAML's ``safe_load``) or a plain text file with one name per line (``#`` starts a comment line).

    Raises:
        ValueError: unreadable file, invalid YAML (with its line), or no usable ``names`` (naming the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read class names: {e}") from e
    if not str(path).lower().endswith((".yaml", ".yml")):
        lines = [ln.rstrip("\r") for ln in text.split("\n")]
        names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not names:
            raise ValueError(f"{path}: no class names")
        _check_names(names, str(path))
        return names
    import yaml  # noqa: PLC0415 - a core dependency, imported where YAML is read

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ValueError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(doc, dict) or "names" not in doc:
        raise ValueError(f'{path}: no "names:" key')
    raw = doc["names"]
    if isinstance(raw, list):
        names = raw
    elif isinstance(raw, dict):
        keys = list(raw)
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in keys) or sorted(keys) != list(
            range(len(keys))
        ):
            raise ValueError(f'{path}: class ids under "names:" must be 0..N-1, got {sorted(map(str, keys))}')
        names = [raw[i] for i in range(len(keys))]
    else:
        raise ValueError(f'{path}: "names:" must be a list or a mapping of ids to names, got {type(raw).__name__}')
    if not names:
        raise ValueError(f'{path}: "names:" is empty')
    # YAML turns `- 1` into an int and `- yes` into True: names are text, so numbers are kept as written text
    # only when they are plain strings; anything else is an error naming the entry.
    bad = [(i, n) for i, n in enumerate(names) if not isinstance(n, str) or not n.strip()]
    if bad:
        raise ValueError(f"{path}: class name {bad[0][0]} is {bad[0][1]!r}, not a non-empty string (quote it)")
    names = [n.strip() for n in names]
    _check_names(names, str(path))
    return names


def _check_names(names: list[str], source: str) -> None:
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in seen:
            raise ValueError(f"{source}: class name {n!r} appears twice (ids {seen[n]} and {i})")
        seen[n] = i


# Class files looked for beside YOLO-OBB labels and in the folders above them (Ultralytics keeps its dataset
# YAML at the dataset root: <root>/data.yaml, <root>/labels/train/*.txt).
CLASS_FILES = ("classes.yaml", "classes.yml", "data.yaml", "data.yml", "classes.txt")


def find_class_file(label_path: str | os.PathLike, levels: int = 3) -> str | None:
    """The class-names file of a YOLO-OBB label file or folder: one of ``CLASS_FILES`` in its folder or up to
    ``levels`` folders above, else the only ``*.yaml`` with a ``names:`` key there; ``None`` when none is found."""
    from pathlib import Path  # noqa: PLC0415

    p = Path(label_path)
    folder = p if p.is_dir() else p.parent
    for d in [folder, *list(folder.parents)[:levels]]:
        for name in CLASS_FILES:
            if (d / name).is_file():
                return str(d / name)
        yamls = []
        for y in sorted(d.glob("*.y*ml")):
            try:
                head = y.read_text(encoding="utf-8", errors="replace")[:100_000]
            except OSError:
                continue
            if any(ln.startswith("names:") for ln in head.split("\n")):
                yamls.append(y)
        if len(yamls) == 1:
            return str(yamls[0])
    return None


def write_class_names(path: str | os.PathLike, names: list[str] | tuple[str, ...]) -> None:
    """Write class names as a YOLO-style YAML (``names:`` mapping, quoted where YAML needs it) or, for other
    extensions, one per line."""
    with open(path, "w", encoding="utf-8") as f:
        if str(path).lower().endswith((".yaml", ".yml")):
            import yaml  # noqa: PLC0415

            f.write(yaml.safe_dump({"names": dict(enumerate(names))}, sort_keys=False, allow_unicode=True))
        else:
            f.write("".join(f"{n}\n" for n in names))


def resolve_classes(classes, default: tuple[str, ...]) -> list[str]:
    """Turn a ``classes`` argument into a list of names.

    Args:
        classes: ``None`` (use ``default``), a list/tuple of names, a dataset key (``'dota1.0'``...), or the
            path of a names file (``.yaml``/``.yml``/``.txt``/``.names``, or any ``os.PathLike``).
        default: the list used for ``None``.
    """
    if classes is None:
        return list(default)
    if isinstance(classes, (list, tuple)):
        if not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"classes must be non-empty strings, got {classes!r}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"classes contain duplicates: {classes!r}")
        return list(classes)
    if isinstance(classes, os.PathLike) or (
        isinstance(classes, str) and classes.lower().endswith((".yaml", ".yml", ".txt", ".names"))
    ):
        return read_class_names(classes)
    if isinstance(classes, str):
        return list(get_classes(classes))
    raise ValueError(f"classes must be None, a list of names, a dataset key or a file path, got {classes!r}")


class ClassIndex:
    """Name -> id lookup: exact match first, then ``normalize_name`` (so ``'storage tank'`` finds
    ``'storage-tank'``). Unknown names give ``None``."""

    def __init__(self, names: list[str]):
        self.names = list(names)
        self.exact = {n: i for i, n in enumerate(self.names)}
        self.loose: dict[str, int] = {}
        for i, n in enumerate(self.names):
            self.loose.setdefault(normalize_name(n), i)

    def get(self, name: str) -> int | None:
        i = self.exact.get(name)
        return self.loose.get(normalize_name(name)) if i is None else i
