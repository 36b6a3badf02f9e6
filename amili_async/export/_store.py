"""Where an export's finished files and manifest go: a local directory or any fsspec URL.

`open_store(out, storage_options)` answers a `Store`: a local path (or `file://`) keeps the
durable local writes (fsync, write aside and rename, no symbolic link followed); any other
URL (`s3://`, `gs://`, `abfs://`...) goes through fsspec, where nothing is renamed or locked:
a finished file is uploaded whole to its deterministic key and then checked (its size read
back), and a key is only ever written with the one content its unit produces. Staged rows and
checkpoints never live in a remote store: they stay on the runner's own scratch directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from .._durable import check_inside, open_binary, publish, write_atomic

__all__ = ["STATE_DIR", "Store", "StoreWriteError", "delta_options", "open_store"]

STATE_DIR = "_amili"
"""The export's own state (manifest, staged Delta parts) under the output root: a leading
underscore, so pyarrow, pandas, polars, DuckDB and Spark skip it when reading the dataset."""
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "abfs": "azure", "az": "azure"}
"""The extra (or the fsspec driver's package family) each URL scheme needs."""
_LOCAL_SCHEMES = frozenset({"", "file", "local"})
_S3_TO_DELTA = {
    "key": "AWS_ACCESS_KEY_ID",
    "secret": "AWS_SECRET_ACCESS_KEY",
    "token": "AWS_SESSION_TOKEN",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "region_name": "AWS_REGION",
}
"""s3fs's storage options and the object_store (deltalake) keys that say the same."""


class StoreWriteError(OSError):
    """A file uploaded to the store is not what was sent (its size read back differs)."""


def _scheme(url: str) -> str:
    head, sep, _ = url.partition("://")
    return head.lower() if sep else ""


def open_store(out: Path | str, storage_options: Mapping[str, Any] | None = None) -> Store:
    """The store behind `out`: a local directory, or an fsspec URL (ImportError, one line with
    the pip command, when the URL's scheme needs a driver that is not installed)."""
    text = str(out)
    scheme = _scheme(text)
    if scheme in _LOCAL_SCHEMES:
        path = Path(text.partition("://")[2] if scheme else text)
        return Store(url=str(path), local=path, options={})
    options = dict(storage_options or {})
    try:
        import fsspec  # type: ignore[import-untyped,unused-ignore]

        fs = fsspec.filesystem(scheme, **_fsspec_options(scheme, options))
    except ImportError:
        extra = _EXTRAS.get(scheme)
        hint = f"pip install 'amili-async[{extra}]'" if extra == "s3" else "install its driver"
        raise ImportError(
            f"writing {scheme}:// URLs needs the fsspec driver for {scheme}: {hint}"
        ) from None
    except ValueError as error:  # fsspec: "Protocol not known"
        raise ValueError(f"cannot write {scheme}:// URLs: {error}") from None
    return Store(url=text.rstrip("/"), local=None, options=options, fs=fs)


def _fsspec_options(scheme: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The storage options for fsspec: object_store spellings (AWS_...) translated for s3fs."""
    if scheme not in ("s3", "s3a"):
        return {k: v for k, v in options.items() if not k.isupper()}
    given = {k: v for k, v in options.items() if not k.isupper()}
    for s3fs_key, upper in _S3_TO_DELTA.items():
        if upper in options and s3fs_key not in given:
            if s3fs_key == "region_name":
                given.setdefault("client_kwargs", {})["region_name"] = options[upper]
            else:
                given[s3fs_key] = options[upper]
    return given


def delta_options(store: Store) -> dict[str, str]:
    """The store's options for deltalake (object_store keys): s3fs spellings translated,
    plain HTTP allowed for an http:// endpoint (a local S3 API)."""
    options = {k: str(v) for k, v in store.options.items() if k.isupper()}
    if _scheme(store.url) in ("s3", "s3a"):
        flat = dict(store.options)
        flat.update(flat.pop("client_kwargs", None) or {})
        for s3fs_key, upper in _S3_TO_DELTA.items():
            if s3fs_key in flat:
                options.setdefault(upper, str(flat[s3fs_key]))
        if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
            options.setdefault("AWS_ALLOW_HTTP", "true")
    return options


@attrs.frozen
class Store:
    """An output root: keys are `/`-separated paths relative to it."""

    url: str
    local: Path | None
    """The directory, for a local store (durable writes, links refused); None for fsspec."""
    options: Mapping[str, Any] = attrs.field(repr=False)
    fs: Any = attrs.field(default=None, repr=False, eq=False)

    def path(self, key: str) -> str:
        """The full path or URL of `key`."""
        return f"{self.url}/{key}"

    def local_path(self, key: str) -> Path:
        assert self.local is not None
        path = self.local / key
        check_inside(self.local, path)
        return path

    def default_scratch(self) -> Path:
        """Where a runner stages rows when none is given: inside a local root (shared by
        whoever shares the root), or this machine's temporary directory for a remote one."""
        if self.local is not None:
            return self.local / STATE_DIR / "partial"
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "amili-async-export" / digest

    def size(self, key: str) -> int | None:
        """The size of the file at `key`, None when there is none."""
        if self.local is not None:
            path = self.local_path(key)
            try:
                return path.lstat().st_size
            except FileNotFoundError:
                return None
        try:
            return int(self.fs.info(self.path(key))["size"])
        except FileNotFoundError:
            return None

    def read(self, key: str) -> bytes | None:
        """The bytes at `key`, None when there is none."""
        if self.local is not None:
            try:
                with open_binary(self.local_path(key), create=False) as stream:
                    return stream.read()
            except FileNotFoundError:
                return None
        try:
            data: bytes = self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            return None
        return data

    def write(self, key: str, data: bytes) -> None:
        """Write `data` at `key` whole: aside and renamed locally, one upload then checked."""
        if self.local is not None:
            path = self.local_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
            return
        self.fs.pipe_file(self.path(key), data)
        self._check(key, len(data))

    def put(self, source: Path, key: str) -> None:
        """Move the finished local file `source` to `key` (renamed locally; uploaded, checked
        and then removed here for a remote store)."""
        if self.local is not None:
            path = self.local_path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            check_inside(self.local, path)
            publish(source, path)
            return
        size = source.stat().st_size
        self.fs.put_file(str(source), self.path(key))
        self._check(key, size)
        source.unlink()

    def _check(self, key: str, size: int) -> None:
        self.fs.invalidate_cache(self.path(key))
        got = self.size(key)
        if got != size:
            raise StoreWriteError(f"{self.path(key)}: uploaded {size:,} bytes, the store has {got}")

    def delete(self, key: str) -> None:
        """Remove `key` if it is there (a link is removed, never followed)."""
        if self.local is not None:
            path = self.local / key
            check_inside(self.local, path.parent)
            path.unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.path(key))

    def keys(self, prefix: str) -> list[str]:
        """The keys under `prefix` (a folder), sorted."""
        if self.local is not None:
            root = self.local / prefix
            if not root.is_dir():
                return []
            return sorted(
                p.relative_to(self.local).as_posix() for p in root.rglob("*") if p.is_file()
            )
        base = self.path(prefix)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return []
        root = self.fs._strip_protocol(self.url)
        return sorted(str(p)[len(root) + 1 :] for p in found)
