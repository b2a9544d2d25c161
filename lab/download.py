"""`lab data download flowers`: fetch Oxford-102 Flowers with the Reed et al. (2016) captions.

The archive (`cvpr2016_flowers.zip`, `captions/` + `images/`) lives on Google
Drive, fetched with gdown; `--url` takes any HTTP mirror instead. Downloads go
to `<name>.part` and resume from there after an interruption (HTTP Range /
gdown resume). Before extracting, every member's CRC-32 is checked and, when
`--sha256` is given, the whole file's hash, so a truncated or corrupted
download is caught instead of silently training on half a data set.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

from .errors import LabError

GDRIVE_ID = "1JJjMiNieTz7xYs6UeVqd02M3DW4fnEfU"
ARCHIVE = "cvpr2016_flowers.zip"
CHUNK = 1 << 20


def fetch_http(url: str, part: Path, progress: bool = True) -> None:
    """Download `url` into `part`, continuing from its current size when the server allows ranges."""
    import requests
    from tqdm import tqdm

    done = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=30)
    except requests.RequestException as e:
        raise LabError(f"cannot reach {url} (offline?): {type(e).__name__}") from None
    with response:
        if response.status_code == 416:  # range beyond the end: the file is complete
            return
        if response.status_code not in (200, 206):
            raise LabError(f"download failed: HTTP {response.status_code} from {url}")
        if response.status_code == 200:
            done = 0  # server ignored the range; start over
        total = int(response.headers.get("Content-Length", 0)) + done
        with part.open("ab" if done else "wb") as f, tqdm(total=total or None, initial=done, unit="B", unit_scale=True, desc=part.name, disable=not progress) as bar:
            for chunk in response.iter_content(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))


def fetch_gdrive(file_id: str, part: Path) -> None:
    import gdown

    try:
        result = gdown.download(id=file_id, output=str(part), quiet=False, resume=True)
    except Exception as e:  # gdown raises many types for network and quota problems
        raise LabError(f"cannot download from Google Drive (offline or quota exceeded?): {str(e).splitlines()[0]}") from None
    if result is None:
        raise LabError("cannot download from Google Drive (offline or quota exceeded?)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_archive(path: Path, sha256: str = "") -> None:
    """Check the whole-file hash (if known) and every member's CRC-32."""
    if sha256 and sha256_of(path) != sha256.lower():
        raise LabError(f"{path} does not match the expected sha256; delete it and download again")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except zipfile.BadZipFile:
        raise LabError(f"{path} is not a complete zip archive; run the command again to resume the download") from None
    if bad:
        raise LabError(f"{path} is corrupted ({bad} fails its CRC check); delete it and download again")


def download_flowers(dest: str | Path, url: str = "", sha256: str = "", progress: bool = True) -> Path:
    """Download (resuming), verify and extract the Flowers archive into `dest`; returns `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    archive, part = dest / ARCHIVE, dest / f"{ARCHIVE}.part"
    if not archive.exists():
        fetch_http(url, part, progress) if url else fetch_gdrive(GDRIVE_ID, part)
        verify_archive(part, sha256)
        os.replace(part, archive)
    else:
        verify_archive(archive, sha256)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(dest)
    return dest


def main(args) -> None:
    print(download_flowers(args.dest, args.url, args.sha256))
