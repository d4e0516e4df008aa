"""A small downloader for the official dataset files: checksummed, atomic and resumable.

The bytes go to `<file>.part`; an interrupted download continues from there with an HTTP Range
request (or starts over where the server ignores it). Only a file whose checksum matches is renamed
to its final name, so a half-downloaded or corrupt file never looks finished. Archives unpack into a
temporary folder first and move into place when complete.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..util.errors import UserError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Remote:
    url: str
    filename: str
    md5: str | None = None
    sha256: str | None = None
    extract: bool = False  # unpack this archive into the data folder once checked
    inner: tuple[str, ...] = ()  # archives inside it to unpack too (Caltech-101's zip holds a .tar.gz)


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def checksum_problem(path: Path, md5: str | None, sha256: str | None) -> str | None:
    """None when the file matches every checksum given, else what differs."""
    for algorithm, want in (("sha256", sha256), ("md5", md5)):
        if want:
            got = file_digest(path, algorithm)
            if got != want.lower():
                return f"{algorithm} is {got}, expected {want}"
    return None


def download(url: str, dest: Path, md5: str | None = None, sha256: str | None = None, timeout: float = 60.0,
             progress: bool = True) -> Path:
    """Fetch `url` to `dest` unless a file with the right checksum is there. Raises UserError."""
    dest = Path(dest)
    if dest.is_file():
        problem = checksum_problem(dest, md5, sha256)
        if problem is None:
            return dest
        _say(progress, f"{dest} exists but its {problem}; downloading it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": "reinitlab-downloader (python urllib)"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to fetch: the .part file is complete
            resp = None
        else:
            raise UserError(f"cannot download {url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"cannot download {url} ({reason}); without internet, put {dest.name} in {dest.parent} "
                        "and run the command again") from None
    if resp is not None:
        with resp:
            resumed = offset and resp.status == 206 and _range_start(resp.headers.get("Content-Range")) == offset
            if not resumed:
                offset = 0
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            _copy(resp, part, "ab" if resumed else "wb", offset, total, url, progress)
        size = part.stat().st_size
        if total is not None and size != total:
            raise UserError(f"download of {url} stopped at {size} of {total} bytes; run the command again to resume")
    problem = checksum_problem(part, md5, sha256)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise UserError(f"{url}: checksum mismatch: the downloaded {dest.name}'s {problem}; it was deleted, "
                        "run the command again (if it persists, the file on the server changed)")
    os.replace(part, dest)
    return dest


def _range_start(content_range: str | None) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(content_range.split()[1].split("-")[0])
    except (AttributeError, IndexError, ValueError):
        return None


def _copy(resp, part: Path, mode: str, offset: int, total: int | None, url: str, progress: bool) -> None:
    done, last, start = offset, 0.0, time.time()
    try:
        with open(part, mode) as f:
            while True:
                block = resp.read(CHUNK)
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress and time.time() - last > 5:
                    last = time.time()
                    pct = f" ({100 * done / total:.0f}%)" if total else ""
                    rate = (done - offset) / max(time.time() - start, 1e-6) / 1e6
                    _say(True, f"{url}: {done / 1e6:.1f} MB{pct}, {rate:.1f} MB/s")
            f.flush()
            os.fsync(f.fileno())
    except (OSError, http.client.HTTPException) as e:  # reset, cut, disk full: what arrived stays in .part
        raise UserError(f"download of {url} failed after {done} bytes ({e}); run the command again to resume") from None


def extract(archive: Path, into: Path) -> list[Path]:
    """Unpack a .tar(.gz/.bz2/.xz), .tgz or .zip into `into`; returns the top-level entries it made.
    Members that would land outside `into` (absolute paths, '..', links out) are refused."""
    archive, into = Path(archive), Path(into)
    into.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=into, prefix=".extract-"))
    try:
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as z:
                    for m in z.namelist():
                        _check_member(archive, m)
                    z.extractall(tmp)
            elif tarfile.is_tarfile(archive):
                with tarfile.open(archive) as t:
                    if hasattr(tarfile, "data_filter"):
                        t.extractall(tmp, filter="data")
                    else:  # Python < 3.10.12 has no extraction filters: check names ourselves
                        for m in t.getmembers():
                            _check_member(archive, m.name)
                            if m.issym() or m.islnk():
                                _check_member(archive, str(Path(m.name).parent / m.linkname))
                        t.extractall(tmp)
            else:
                raise UserError(f"{archive}: not a zip or tar archive")
        except getattr(tarfile, "FilterError", ()) as e:  # Python >= 3.10.12
            raise UserError(f"{archive}: refusing to unpack an unsafe member ({e})") from None
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
            raise UserError(f"{archive}: corrupt or truncated archive ({e.__class__.__name__}: {e})") from None
        made = []
        for entry in sorted(tmp.iterdir()):
            if entry.name == "__MACOSX":
                continue
            target = into / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
            made.append(target)
        return made
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_member(archive: Path, name: str) -> None:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts:
        raise UserError(f"{archive}: refusing to unpack {name!r}, which points outside the target folder")


def _say(enabled: bool, msg: str) -> None:
    if enabled:
        print(f"reinitlab: {msg}", file=sys.stderr)
