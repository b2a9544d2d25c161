"""`lab data download flowers`: fetch Oxford-102 Flowers with the Reed et al. (2016) captions.

The archive (`cvpr2016_flowers.zip`, `captions/` + `images/`) lives on Google
Drive, fetched with gdown; `--url` takes any HTTP mirror instead. Downloads go
to `<name>.part` and resume from there after an interruption (HTTP Range /
gdown resume). Before extracting, every member's CRC-32 is checked and, when
`--sha256` is given, the whole file's hash, so a truncated or corrupted
download is caught instead of silently training on half a data set.

Extraction is refused when the archive's declared sizes exceed `MAX_EXTRACT_BYTES`,
expand more than `MAX_RATIO` times (a zip bomb), or do not fit the free disk
space; zipfile itself stops every member at its declared size, so a lying
header cannot write more. A `.part` that is not the start of a zip (Google
Drive's quota page, a proxy's login page) cannot be resumed into one, so it is
reported instead of looping on "run again to resume".
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from pathlib import Path

from lab.errors import LabError
from lab.files import check_folder, remedy

GDRIVE_ID = "1JJjMiNieTz7xYs6UeVqd02M3DW4fnEfU"
ARCHIVE = "cvpr2016_flowers.zip"
CHUNK = 1 << 20
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip starts with a member, or is empty
MAX_EXTRACT_BYTES = 16 << 30  # the Flowers archive extracts to well under 1 GiB
MAX_RATIO = 50  # JPEGs barely compress; text compresses about 4x


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
        with (
            part.open("ab" if done else "wb") as f,
            tqdm(
                total=total or None, initial=done, unit="B", unit_scale=True, desc=part.name, disable=not progress
            ) as bar,
        ):
            for chunk in response.iter_content(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))


def fetch_gdrive(file_id: str, part: Path) -> None:
    import gdown

    try:
        result = gdown.download(id=file_id, output=str(part), quiet=False, resume=True)
    except Exception as e:  # gdown raises many types for network and quota problems
        raise LabError(
            f"cannot download from Google Drive (offline or quota exceeded?): {str(e).splitlines()[0]}"
        ) from None
    if result is None:
        raise LabError("cannot download from Google Drive (offline or quota exceeded?)")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_part(part: Path) -> None:
    """Refuse a partial download that is not the start of a zip (an HTML error page, say): resuming would never fix it."""
    with part.open("rb") as f:
        head = f.read(64)
    if head and not head.startswith(ZIP_MAGIC[0][: len(head)]) and not head.startswith(ZIP_MAGIC[1][: len(head)]):
        looks = "an HTML page (quota or login page?)" if b"<" in head[:16] else "not a zip archive"
        raise LabError(
            f"{part} is {looks}, so it cannot be resumed; delete it and download again (or pass --url MIRROR)"
        )


def verify_archive(path: Path, sha256: str = "") -> None:
    """Check the whole-file hash (if known) and every member's CRC-32."""
    if sha256 and sha256_of(path) != sha256.lower():
        raise LabError(f"{path} does not match the expected sha256; delete it and download again")
    try:
        with zipfile.ZipFile(path) as zf:
            check_sizes(zf, path.stat().st_size, path.parent)
            bad = zf.testzip()
    except zipfile.BadZipFile:
        raise LabError(f"{path} is not a complete zip archive; run the command again to resume the download") from None
    if bad:
        raise LabError(f"{path} is corrupted ({bad} fails its CRC check); delete it and download again")


def check_sizes(zf: zipfile.ZipFile, archive_bytes: int, dest: Path) -> None:
    """Refuse to extract what is too big, expands suspiciously (a zip bomb) or does not fit on the disk."""
    total = sum(member.file_size for member in zf.infolist())
    name = zf.filename
    if total > MAX_EXTRACT_BYTES:
        raise LabError(
            f"{name} would extract to {total / 2**30:.1f} GiB, over the {MAX_EXTRACT_BYTES / 2**30:.0f} GiB limit; not extracting"
        )
    if total > MAX_RATIO * max(archive_bytes, 1):
        raise LabError(
            f"{name} would expand {total / max(archive_bytes, 1):.0f}x ({total / 2**20:.0f} MiB), a zip bomb, not a data set; not extracting"
        )
    free = shutil.disk_usage(dest).free
    if total > free:
        raise LabError(f"{name} needs {total / 2**20:.0f} MiB to extract but {dest} has {free / 2**20:.0f} MiB free")


def download_flowers(
    dest: str | Path, url: str = "", sha256: str = "", progress: bool = True, force: bool = False
) -> Path:
    """Download (resuming), verify and extract the Flowers archive into `dest`; returns `dest`.

    `dest` must hold nothing but the archive (or its partial download) unless `force`: extracting again
    would replace an extracted data set's files, hand-edited captions included."""
    dest = Path(dest)
    archive, part = dest / ARCHIVE, dest / f"{ARCHIVE}.part"
    check_folder(dest, "--dest", force, ignore=(archive.name, part.name))
    again = "run the command again to resume"
    try:
        dest.mkdir(parents=True, exist_ok=True)
        if not archive.exists():
            if part.is_file():
                check_part(part)
            fetch_http(url, part, progress) if url else fetch_gdrive(GDRIVE_ID, part)
            check_part(part)
            verify_archive(part, sha256)
            os.replace(part, archive)
        else:
            verify_archive(archive, sha256)
        again = "run the command again with --force (what was extracted is written over)"
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)
    except OSError as e:  # disk full, no permission, a connection dropped mid-download (requests errors are OSErrors)
        reason = (e.strerror or str(e) or type(e).__name__).splitlines()[0]
        fix = remedy(e) or "; fix that"
        raise LabError(f"{e.filename or dest}: {reason}{fix}, and {again}") from None
    return dest


def main(args) -> None:
    print(download_flowers(args.dest, args.url, args.sha256, force=args.force))
