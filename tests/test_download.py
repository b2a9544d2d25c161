"""The downloader against a local HTTP server: resume, CRC check, clear offline error."""

import functools
import http.server
import threading
import zipfile

import pytest

from lab.data.download import ARCHIVE, download_flowers, sha256_of
from lab.errors import LabError


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support, like a real mirror."""

    def log_message(self, *args):
        pass

    def send_head(self):
        path = self.translate_path(self.path)
        try:
            data = open(path, "rb").read()
        except OSError:
            self.send_error(404)
            return None
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])
        return None


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with zipfile.ZipFile(root / ARCHIVE, "w") as zf:
        for i in range(3):
            zf.writestr(f"cvpr2016_flowers/images/image_{i}.jpg", bytes(range(256)) * 40)
            zf.writestr(f"cvpr2016_flowers/captions/image_{i}.txt", f"caption {i}\n")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root / ARCHIVE, f"http://127.0.0.1:{httpd.server_port}/{ARCHIVE}"
    httpd.shutdown()


def test_resumes_a_partial_download_and_extracts(tmp_path, server):
    archive, url = server
    dest = tmp_path / "flowers"
    dest.mkdir()
    blob = archive.read_bytes()
    (dest / f"{ARCHIVE}.part").write_bytes(blob[: len(blob) // 2])  # an interrupted earlier attempt
    download_flowers(dest, url, sha256=sha256_of(archive), progress=False)
    assert (dest / ARCHIVE).read_bytes() == blob
    assert (dest / "cvpr2016_flowers" / "captions" / "image_2.txt").read_text() == "caption 2\n"


def test_wrong_checksum_and_corruption_are_caught(tmp_path, server):
    archive, url = server
    with pytest.raises(LabError, match="does not match the expected sha256"):
        download_flowers(tmp_path / "a", url, sha256="0" * 64, progress=False)
    dest = tmp_path / "b"
    dest.mkdir()
    blob = bytearray(archive.read_bytes())
    blob[60] ^= 0xFF  # flip a byte inside the first member's data
    (dest / ARCHIVE).write_bytes(bytes(blob))
    with pytest.raises(LabError, match="corrupted|not a complete zip"):
        download_flowers(dest, url, progress=False)


def test_unreachable_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(LabError, match="cannot reach http://127.0.0.1:9/x.zip"):
        download_flowers(tmp_path, "http://127.0.0.1:9/x.zip", progress=False)
