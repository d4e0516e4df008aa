"""The downloader against a local HTTP server (no internet): checksums, atomic rename, resume,
offline errors; archive unpacking; `prepare` end to end with a tiny official-layout archive."""
import contextlib
import dataclasses
import functools
import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_data_cifar import write_cifar10

from reinitlab.data import DATASETS, caltech101, load_dataset
from reinitlab.data.download import Remote, download, extract
from reinitlab.data.prepare import fetch, prepare
from reinitlab.util.errors import UserError

CLOSED = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused


@pytest.fixture(autouse=True)
def cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("REINITLAB_DATA", str(tmp_path_factory.mktemp("cache")))


class Handler(SimpleHTTPRequestHandler):
    """Serves a folder; honours 'Range: bytes=N-' unless the server says not to; can cut a reply short."""

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            return self.send_error(404, "Not Found")
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self.send_error(416, "Range Not Satisfiable")
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if srv.cut else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    srv.requests, srv.honour_range, srv.cut, srv.root = [], True, False, root
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def blob(n=300_000) -> bytes:
    return bytes((i * 7919) % 251 for i in range(n))


def test_download_checks_sha256_and_md5_and_skips_a_good_file(server, tmp_path):
    data = blob()
    (server.root / "f.bin").write_bytes(data)
    dest = tmp_path / "dl" / "f.bin"
    download(server.url + "f.bin", dest, md5=hashlib.md5(data).hexdigest(),
             sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert dest.read_bytes() == data and not (tmp_path / "dl" / "f.bin.part").exists()
    download(server.url + "f.bin", dest, md5=hashlib.md5(data).hexdigest(), progress=False)
    assert len(server.requests) == 1


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    (server.root / "f.bin").write_bytes(blob())
    dest = tmp_path / "f.bin"
    with pytest.raises(UserError, match=r"checksum mismatch: the downloaded f.bin's md5 is [0-9a-f]{32}, expected 0{32}"):
        download(server.url + "f.bin", dest, md5="0" * 32, progress=False)
    assert list(tmp_path.glob("f.bin*")) == []


def test_resume_from_a_partial_file_with_range(server, tmp_path):
    data = blob()
    (server.root / "f.bin").write_bytes(data)
    (tmp_path / "f.bin.part").write_bytes(data[:100_000])
    download(server.url + "f.bin", tmp_path / "f.bin", sha256=hashlib.sha256(data).hexdigest(), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data
    assert server.requests == [("/f.bin", "bytes=100000-")]


def test_server_ignoring_range_starts_over(server, tmp_path):
    data = blob()
    (server.root / "f.bin").write_bytes(data)
    (tmp_path / "f.bin.part").write_bytes(b"x" * 1000)  # not even the right bytes
    server.honour_range = False
    download(server.url + "f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_complete_part_file_answered_416_is_verified_and_kept(server, tmp_path):
    data = blob(5000)
    (server.root / "f.bin").write_bytes(data)
    (tmp_path / "f.bin.part").write_bytes(data)
    download(server.url + "f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_cut_transfer_keeps_the_part_and_the_next_run_resumes(server, tmp_path):
    data = blob()
    (server.root / "f.bin").write_bytes(data)
    server.cut = True
    with pytest.raises(UserError, match=r"stopped at 150000 of 300000 bytes; run the command again to resume"):
        download(server.url + "f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(), progress=False)
    assert not (tmp_path / "f.bin").exists() and (tmp_path / "f.bin.part").stat().st_size == 150_000
    server.cut = False
    download(server.url + "f.bin", tmp_path / "f.bin", md5=hashlib.md5(data).hexdigest(), progress=False)
    assert (tmp_path / "f.bin").read_bytes() == data


def test_http_error_and_offline(server, tmp_path):
    with pytest.raises(UserError, match="cannot download .*/missing.bin: HTTP 404"):
        download(server.url + "missing.bin", tmp_path / "m.bin", progress=False)
    with pytest.raises(UserError, match=rf"cannot download {CLOSED}x.tgz .*without internet, put x.tgz in {tmp_path}"):
        download(CLOSED + "x.tgz", tmp_path / "x.tgz", progress=False)


def targz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_extract_tar_and_zip(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(targz({"top/x.txt": b"x", "top/sub/y.txt": b"y"}))
    assert extract(tmp_path / "a.tar.gz", tmp_path / "out") == [tmp_path / "out" / "top"]
    assert (tmp_path / "out" / "top" / "sub" / "y.txt").read_bytes() == b"y"
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as z:
        z.writestr("z/one.txt", "1")
        z.writestr("__MACOSX/._junk", "")
    extract(tmp_path / "b.zip", tmp_path / "out")
    assert (tmp_path / "out" / "z" / "one.txt").read_text() == "1"
    assert not (tmp_path / "out" / "__MACOSX").exists()
    assert not list((tmp_path / "out").glob(".extract-*"))


def test_extract_refuses_escaping_members_and_names_corrupt_archives(tmp_path):
    (tmp_path / "evil.tar.gz").write_bytes(targz({"../evil.txt": b"boom"}))
    with pytest.raises(UserError, match="evil.tar.gz: refusing to unpack an unsafe member"):
        extract(tmp_path / "evil.tar.gz", tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as z:
        z.writestr("../evil.txt", "boom")
    with pytest.raises(UserError, match="evil.zip: refusing to unpack '../evil.txt'"):
        extract(tmp_path / "evil.zip", tmp_path / "out")
    good = targz({"a/b.txt": b"b" * 100_000})
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="cut.tar.gz: (corrupt or truncated archive|not a zip or tar archive)"):
        extract(tmp_path / "cut.tar.gz", tmp_path / "out")
    assert not list((tmp_path / "out").glob(".extract-*"))


def cifar_archive(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    write_cifar10(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


@pytest.fixture
def stack():
    with contextlib.ExitStack() as s:
        yield s


def with_remote(stack, name: str, url: str, filename: str, data: bytes, **kw):
    """Until the test ends, `name`'s official download is the test server's file."""
    info = dataclasses.replace(DATASETS[name], remotes=(Remote(url, filename, md5=hashlib.md5(data).hexdigest(),
                                                               extract=True, **kw),))
    stack.enter_context(DATASETS.overriding(name, info))


def test_prepare_downloads_unpacks_and_caches(server, tmp_path, stack):
    data = cifar_archive(tmp_path)
    (server.root / "cifar-10-python.tar.gz").write_bytes(data)
    with_remote(stack, "cifar10", server.url + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz", data)
    bundle, cache, _ = prepare("cifar10", tmp_path / "dl", progress=False)
    assert bundle.x_train.shape == (40, 3, 32, 32) and cache.is_file()
    assert (tmp_path / "dl" / "cifar-10-batches-py" / "data_batch_5").is_file()
    n = len(server.requests)
    prepare("cifar10", tmp_path / "dl", progress=False)  # ready: nothing fetched again
    assert len(server.requests) == n
    assert load_dataset("cifar10", tmp_path / "dl").x_test.shape == (8, 3, 32, 32)


def test_prepare_into_the_default_folder(server, tmp_path, stack):
    data = cifar_archive(tmp_path)
    (server.root / "c.tgz").write_bytes(data)
    with_remote(stack, "cifar10", server.url + "c.tgz", "c.tgz", data)
    prepare("cifar10", progress=False)
    assert load_dataset("cifar10").x_train.shape[0] == 40  # found without --data-dir


def test_prepare_offline_uses_the_archive_placed_by_hand(tmp_path, stack):
    data = cifar_archive(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cifar-10-python.tar.gz").write_bytes(data)
    with_remote(stack, "cifar10", CLOSED + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz", data)
    bundle, _, _ = prepare("cifar10", tmp_path / "mine", progress=False)
    assert bundle.num_classes == 10


def test_prepare_offline_without_files_says_what_to_place(tmp_path, stack):
    data = b"whatever"
    with_remote(stack, "cifar10", CLOSED + "cifar-10-python.tar.gz", "cifar-10-python.tar.gz", data)
    with pytest.raises(UserError, match=r"without internet, put cifar-10-python.tar.gz in .*/empty"):
        prepare("cifar10", tmp_path / "empty", progress=False)
    with pytest.raises(UserError, match=r"expected cifar-10-batches-py/ with data_batch_1"):
        prepare("cifar10", tmp_path / "empty", allow_download=False, progress=False)


def test_fetch_unpacks_archives_inside_archives(server, tmp_path, stack, monkeypatch):
    """Caltech-101's zip holds caltech-101/101_ObjectCategories.tar.gz."""
    from PIL import Image
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as t:
        for c in ("accordion", "airplanes"):
            for i in range(1, 4):
                img = io.BytesIO()
                Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(img, format="JPEG")
                info = tarfile.TarInfo(f"101_ObjectCategories/{c}/image_{i:04d}.jpg")
                info.size = len(img.getvalue())
                t.addfile(info, io.BytesIO(img.getvalue()))
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as z:
        z.writestr("caltech-101/101_ObjectCategories.tar.gz", inner.getvalue())
        z.writestr("caltech-101/Annotations.tar", b"")
    (server.root / "caltech-101.zip").write_bytes(outer.getvalue())
    with_remote(stack, "caltech101", server.url + "caltech-101.zip", "caltech-101.zip", outer.getvalue(),
                inner=("caltech-101/101_ObjectCategories.tar.gz",))
    monkeypatch.setattr(caltech101, "NUM_CLASSES", 2)
    monkeypatch.setattr(caltech101, "TRAIN_PER_CLASS", 2)
    fetch(DATASETS["caltech101"], tmp_path / "c", progress=False)
    assert (tmp_path / "c" / "101_ObjectCategories" / "airplanes" / "image_0003.jpg").is_file()
    b = load_dataset("caltech101", tmp_path / "c", resolution=8)
    assert b.x_train.shape == (4, 3, 8, 8) and b.x_test.shape == (2, 3, 8, 8)
