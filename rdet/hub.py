"""Downloads: a file from a URL into rdet's cache, checked, resumable, fetched once per machine.

Used by the model zoo (:mod:`rdet.zoo`); nothing else in rdet touches the network, and nothing downloads
unless asked (a zoo name given to ``rdet.load_checkpoint``, ``--model``, or ``rdet zoo download``).

* Cache: ``$RDET_HOME`` (default ``~/.cache/rdet``); read at call time, so tests and users can move it.
* Integrity: published file names end in the first hex digits of the file's sha256
  (``...-31193e00.pth``); the downloaded bytes must hash to that prefix, else the file is deleted and
  :class:`ChecksumError` is raised. Only a verified file is moved into place (atomic rename), so a file in
  the cache is always a complete, checked one.
* Resume: bytes arrive in ``<file>.part``; a cut connection keeps them and the next attempt asks the server
  for the rest (HTTP ``Range``). A few automatic retries happen within one call.
* Concurrency: an exclusive lock on ``<file>.lock`` (``flock``) makes a second process wait for the first
  one's download instead of fetching the same file again.
* Offline: :class:`DownloadError` says which URL to fetch and where to put the file.

Standard library only (urllib); the progress bar is tqdm.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20
RETRY_WAIT = 1.0  # seconds before an automatic resume (doubles each time)
_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


class DownloadError(FileNotFoundError):
    """A file that had to be downloaded is not in the cache and could not be fetched.

    A ``FileNotFoundError``: the caller asked for a file that is not here. The message names the URL and
    the path where a manually fetched copy must go.
    """


class ChecksumError(DownloadError):
    """The downloaded bytes do not hash to the sha256 prefix in the file's name (the file was deleted)."""


def cache_dir() -> Path:
    """rdet's cache folder: ``$RDET_HOME`` or ``~/.cache/rdet`` (not created here)."""
    return Path(os.environ.get("RDET_HOME") or Path.home() / ".cache" / "rdet").expanduser()


def sha256_prefix(filename: str) -> str | None:
    """The sha256 prefix a published file name ends with (``x-31193e00.pth`` -> ``'31193e00'``), else None."""
    m = _PREFIX.search(filename)
    return m.group(1) if m else None


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _manual(url: str, dest: Path) -> str:
    return f"fetch {url} on a machine with network access and save the file as {dest}"


@contextlib.contextmanager
def _locked(lock_path: Path, what: str) -> Iterator[None]:
    """Exclusive lock across processes on ``lock_path``; says once that it waits for another holder."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # Windows: msvcrt locks a byte range instead
            import msvcrt

            def take(block: bool) -> bool:
                try:
                    msvcrt.locking(f.fileno(), msvcrt.LK_LOCK if block else msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
                    return True
                except OSError:
                    return False

            def release() -> None:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]  # Windows only
        else:

            def take(block: bool) -> bool:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
                    return True
                except BlockingIOError:
                    return False

            def release() -> None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

        if not take(block=False):
            print(f"rdet: waiting for another process that is downloading {what}", file=sys.stderr)
            while not take(block=True):  # msvcrt's blocking lock gives up after ~10 s: try again
                pass
        try:
            yield
        finally:
            release()


def download(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 2,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless ``dest`` already exists; return ``dest``.

    Args:
        url: http(s) URL.
        dest: final path. The data go to ``dest + '.part'`` first and are renamed once complete and checked.
        sha256: expected hex sha256 or a prefix of it; None: the prefix in ``dest``'s name if it has one.
        progress: show a tqdm progress bar on stderr.
        retries: automatic resumes after a cut connection within this call (the ``.part`` file is kept
            either way, so a later call resumes too).
        timeout: seconds without data before a connection counts as cut.

    Raises:
        DownloadError: no network, HTTP error, or still cut after ``retries`` resumes; the message says
            which URL to fetch and where to put the file.
        ChecksumError: the bytes do not match ``sha256`` (nothing is left in the cache).
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    expected = (sha256 or sha256_prefix(dest.name) or "").lower() or None
    with _locked(dest.with_name(dest.name + ".lock"), dest.name):
        if dest.is_file():  # another process finished it while we waited
            return dest
        part = dest.with_name(dest.name + ".part")
        for attempt in range(retries + 1):
            try:
                _fetch(url, part, progress, timeout)
                break
            except _Cut as e:
                if attempt == retries:
                    raise DownloadError(
                        f"download of {url} was cut after {e.have} of {e.total or '?'} bytes ({e.reason}); "
                        f"run the same command again to resume it, or {_manual(url, dest)}"
                    ) from None
                time.sleep(RETRY_WAIT * 2**attempt)
        if expected is not None:
            got = sha256_of(part)
            if not got.startswith(expected):
                part.unlink()
                raise ChecksumError(
                    f"{url}: the downloaded file's sha256 starts with {got[: len(expected)]}, expected {expected} "
                    f"(the end of its name); the file was deleted. Run again to retry, or {_manual(url, dest)}"
                )
        os.replace(part, dest)
    return dest


class _Cut(Exception):
    def __init__(self, have: int, total: int | None, reason: str):
        super().__init__(reason)
        self.have, self.total, self.reason = have, total, reason


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Fetch the rest of ``url`` into ``part`` (appending from its current size); raise _Cut if cut."""
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "rdet"}
    if have:
        headers["Range"] = f"bytes={have}-"
    dest = part.with_suffix("")
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # nothing left to send: complete, unless the server's file is another size
            m = re.match(r"bytes \*/(\d+)", e.headers.get("Content-Range", ""))
            if m and int(m.group(1)) != have:
                part.unlink()
                raise _Cut(0, int(m.group(1)), "the partial file does not fit the server's file") from None
            return
        raise DownloadError(
            f"{url}: the server answered {e.code} {e.reason}; get the file from elsewhere and save it as {dest}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (ConnectionResetError, http.client.HTTPException)):
            raise _Cut(have, None, type(reason).__name__) from None  # reached the server, then lost it
        raise DownloadError(f"cannot download {url} ({reason}). Offline? Then {_manual(url, dest)}") from None
    with response:
        if response.status == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise DownloadError(f"{url}: the server resumed at the wrong offset ({m and m.group(1)} != {have})")
            total = int(m.group(2)) if m.group(2) != "*" else None
        else:  # 200: the server ignores Range (or this is the first request): start over
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        _stream(response, part, have, total, progress)


def _stream(response, part: Path, have: int, total: int | None, progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(
        total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=part.name[: -len(".part")],
        disable=not progress, file=sys.stderr,
    )  # fmt: skip
    with bar, open(part, "ab" if have else "wb") as f:
        try:
            while True:
                block = response.read(CHUNK)
                if not block:
                    break
                f.write(block)
                have += len(block)
                bar.update(len(block))
        except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
            raise _Cut(have, total, type(e).__name__) from None
    if total is not None and have < total:
        raise _Cut(have, total, "connection closed early")
