"""rdet.hub against a local HTTP server on 127.0.0.1 serving files the tests make (never the network)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from local_http import closed_port, published, serving

from rdet import hub


@pytest.fixture
def server():
    with serving() as srv:
        yield srv


@pytest.fixture
def blob() -> bytes:
    return os.urandom(3 * (1 << 20) + 12345)  # ~3 MB: several read blocks


def test_sha256_prefix_from_published_name():
    assert hub.sha256_prefix("rotated_retinanet_obb_kld_stable_r50_fpn_1x_dota_le90-31193e00.pth") == "31193e00"
    assert hub.sha256_prefix("r3det_tiny_r50_fpn_1x_dota_oc-c98a616c.pth") == "c98a616c"
    assert hub.sha256_prefix("model.pth") is None
    assert hub.sha256_prefix("model-final.pth") is None  # not hex


def test_cache_dir_follows_rdet_home(monkeypatch, tmp_path):
    monkeypatch.setenv("RDET_HOME", str(tmp_path / "h"))
    assert hub.cache_dir() == tmp_path / "h"
    monkeypatch.delenv("RDET_HOME")
    assert hub.cache_dir() == Path.home() / ".cache" / "rdet"


def test_good_file_downloads_once_with_progress(server, blob, tmp_path, capsys):
    name = published(blob)
    server.files[f"/m/{name}"] = blob
    dest = tmp_path / "cache" / name
    assert hub.download(server.url(f"/m/{name}"), dest) == dest
    assert dest.read_bytes() == blob
    assert not dest.with_name(name + ".part").exists()
    err = capsys.readouterr().err
    assert name in err and "100%" in err  # the tqdm bar, on stderr
    hub.download(server.url(f"/m/{name}"), dest)  # cached: no second request
    assert [status for _, _, status in server.log] == [200]


def test_wrong_hash_is_rejected_and_not_cached(server, blob, tmp_path):
    name = "model-0badc0de.pth"  # the bytes do not hash to 0badc0de
    server.files[f"/{name}"] = blob
    dest = tmp_path / name
    with pytest.raises(hub.ChecksumError, match="expected 0badc0de") as e:
        hub.download(server.url(f"/{name}"), dest, progress=False)
    assert str(dest) in str(e.value)
    assert not dest.exists() and not dest.with_name(name + ".part").exists()
    # an explicit full digest is checked too
    good = tmp_path / "other.bin"
    server.files["/other.bin"] = blob
    hub.download(server.url("/other.bin"), good, sha256=hashlib.sha256(blob).hexdigest(), progress=False)
    assert good.read_bytes() == blob


def test_cut_connection_resumes_on_the_next_call(server, blob, tmp_path):
    name = published(blob)
    server.files[f"/{name}"] = blob
    server.cut[f"/{name}"] = 1_000_000
    dest = tmp_path / name
    part = dest.with_name(name + ".part")
    with pytest.raises(hub.DownloadError, match="cut after 1000000 of") as e:
        hub.download(server.url(f"/{name}"), dest, retries=0, progress=False)
    assert "again to resume" in str(e.value) and str(dest) in str(e.value)
    assert part.stat().st_size == 1_000_000 and not dest.exists()
    hub.download(server.url(f"/{name}"), dest, retries=0, progress=False)
    assert dest.read_bytes() == blob and not part.exists()
    assert server.log[-1] == (f"/{name}", "bytes=1000000-", 206)  # only the rest was fetched


def test_cut_connection_resumes_within_one_call(server, blob, tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "RETRY_WAIT", 0.0)
    name = published(blob)
    server.files[f"/{name}"] = blob
    server.cut[f"/{name}"] = 200_000
    dest = hub.download(server.url(f"/{name}"), tmp_path / name, progress=False)
    assert dest.read_bytes() == blob
    assert [(r, s) for _, r, s in server.log] == [(None, 200), ("bytes=200000-", 206)]


def test_server_without_range_support_starts_over(server, blob, tmp_path):
    name = published(blob)
    server.files[f"/{name}"] = blob
    server.no_range = True
    part = tmp_path / (name + ".part")
    part.write_bytes(blob[:5000])  # left by an earlier cut download
    dest = hub.download(server.url(f"/{name}"), tmp_path / name, progress=False)
    assert dest.read_bytes() == blob


def test_complete_part_file_is_checked_and_kept(server, blob, tmp_path):
    # the connection was cut after the last byte: the server answers 416 to the Range request
    name = published(blob)
    server.files[f"/{name}"] = blob
    (tmp_path / (name + ".part")).write_bytes(blob)
    assert hub.download(server.url(f"/{name}"), tmp_path / name, progress=False).read_bytes() == blob
    assert server.log == [(f"/{name}", f"bytes={len(blob)}-", 416)]


def test_no_network_says_which_url_to_fetch_and_where_to_put_it(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/zoo/model-12345678.pth"
    dest = tmp_path / "checkpoints" / "model-12345678.pth"
    with pytest.raises(hub.DownloadError) as e:
        hub.download(url, dest, progress=False)
    msg = str(e.value)
    assert url in msg and str(dest) in msg and "refused" in msg.lower()
    assert isinstance(e.value, FileNotFoundError)  # CLIs report it as a missing file, in one line
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_http_error_names_status(server, tmp_path):
    with pytest.raises(hub.DownloadError, match="404"):
        hub.download(server.url("/missing-12345678.pth"), tmp_path / "missing-12345678.pth", progress=False)


def test_two_processes_download_the_same_file_once(server, blob, tmp_path):
    name = published(blob)
    server.files[f"/{name}"] = blob
    server.slow[f"/{name}"] = 0.05  # ~2.5 s for the file: the second process starts while the first downloads
    dest = tmp_path / "cache" / name
    code = "import sys; from rdet import hub; print(hub.download(sys.argv[1], sys.argv[2], progress=False))"
    cmd = [sys.executable, "-c", code, server.url(f"/{name}"), str(dest)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [o.strip() for o, _ in outs] == [str(dest)] * 2
    assert dest.read_bytes() == blob
    assert [s for _, _, s in server.log] == [200]  # one download, whichever process got the lock first
    assert any("waiting for another process" in err for _, err in outs)
