"""Fetch the LAReQA files, from a local mirror when there is one, and prove they are the release.

Every byte that enters the pipeline is checked against the SHA-256 in
params.yaml, so a truncated download, an edited mirror or an upstream change
stops the pipeline instead of silently shifting every number downstream.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm.auto import tqdm
from urllib3.util.retry import Retry

from mlret.artifacts import write_bytes
from mlret.errors import MlretError
from mlret.params import DataParams, SourceParams


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check(path: Path, expected: str, key: str, origin: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise MlretError(
            f"{origin}: checksum {actual[:12]}… does not match the expected {expected[:12]}… (params.yaml {key}).",
            "The file may be truncated or modified; restore a good copy in data.mirror, "
            "or set data.mirror to null to download it again.",
        )


def _session(retries: int) -> requests.Session:
    session = requests.Session()
    retry = Retry(total=retries, backoff_factor=1.0, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    session.mount("http://", HTTPAdapter(max_retries=retry))
    return session


def _download(session: requests.Session, url: str, target: Path) -> None:
    try:
        with session.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            chunks = []
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, leave=False) as bar:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    chunks.append(chunk)
                    bar.update(len(chunk))
    except requests.RequestException as err:
        raise MlretError(
            f"{url}: download failed ({type(err).__name__}: {err}).",
            "Check the network, or set data.mirror in params.yaml to a folder holding {dataset}/{lang}.json.",
        ) from None
    write_bytes(target, b"".join(chunks))


def fetch_source(source: SourceParams, mirror: Path | None, out_dir: Path, retries: int) -> list[Path]:
    """Materialise ``out_dir/{lang}.json`` for every language of one dataset."""
    written = []
    session = None if mirror is not None else _session(retries)
    for lang in tqdm(source.languages, desc=f"download {source.name}", unit="file"):
        target = out_dir / f"{lang}.json"
        key = f"data.sources.{source.name}.sha256.{lang}"
        if mirror is not None:
            origin = mirror / source.name / f"{lang}.json"
            if not origin.is_file():
                raise MlretError(
                    f"{origin}: missing from the mirror (expected for data.sources.{source.name}).",
                    "Restore the file in the mirror, or set data.mirror to null to download from the canonical URL.",
                )
            _check(origin, source.sha256[lang], key, str(origin))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(origin, target)
        else:
            assert session is not None
            _download(session, source.url_for(lang), target)
            _check(target, source.sha256[lang], key, source.url_for(lang))
        written.append(target)
    return written


def resolve_mirror(mirror: str | None) -> Path | None:
    """The mirror folder if configured and present; ``None`` means download over HTTPS."""
    if mirror is None:
        return None
    path = Path(mirror)
    return path if path.is_dir() else None


def download_all(data: DataParams, out_dir: str | Path) -> dict[str, list[Path]]:
    mirror = resolve_mirror(data.mirror)
    if data.mirror is not None and mirror is None:
        print(f"data.mirror {data.mirror} is not a folder here; downloading from the canonical URLs.")
    return {
        name: fetch_source(source, mirror, Path(out_dir) / name, data.download_retries)
        for name, source in sorted(data.sources.items())
    }
