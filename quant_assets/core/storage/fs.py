"""Where the lake lives: a local directory or an object store (``s3://bucket/prefix``), one API for both.

A location is a ``pathlib.Path`` for a local root and a ``upath.UPath`` (pathlib's API over fsspec) for any
other; both join, glob and read alike, so the lake's layout code is the same on either. What differs is
how a file is made visible, and that is here, in three primitives every writer of the project uses:

- ``put_once``: create an object that must never change. On a local disk the bytes go to a private
  temporary file, are fsynced and linked into place (a link never replaces a file); on an object store one
  PUT, conditional (``If-None-Match: *``) where the store supports it. Either way a reader sees the whole
  object or none. A second write of the same bytes is harmless; other bytes under an existing name are
  refused (``ConflictingWrite``), so nothing written is ever replaced.
- ``put_record``: ``put_once`` of a record (manifest, compaction record) after checking that every object it
  names exists: a record is written last, so a reader never sees one whose parts are missing.
- ``listing``: the objects under a base matching a glob, in name order.

The object store's endpoint, region and credentials are given by the caller (the Dagster resources read
them from the standard ``AWS_*`` variables at launch) and registered per protocol with ``register``, so a
location stored as text (a registry row, an asset's output) opens with the same settings wherever it is
read. Nothing here reads the environment.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from pathlib import Path

from fsspec.asyn import sync
from upath import UPath

Location = Path | UPath

_OPTIONS: dict[str, dict] = {}
_ARROW: dict[tuple, object] = {}  # pyarrow S3 filesystems for listings (``_arrow_s3``)


class ConflictingWrite(RuntimeError):
    """Other bytes under the name of an object that exists: the lake never replaces what it wrote."""


class MissingParts(RuntimeError):
    """A record naming objects that do not exist: it is not written, so no reader can follow it."""


def s3_options(endpoint_url: str = "", key: str = "", secret: str = "", region: str = "") -> dict:
    """s3fs's options for the standard settings; an empty one is left to the SDK's own chain (profile, role)."""
    options: dict = {"use_listings_cache": False}  # other processes write: a listing must be read anew
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if key or secret:
        options.update(key=key, secret=secret)
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


def register(protocol: str, options: Mapping) -> None:
    """The options every location of ``protocol`` opens with in this process (see the module docstring)."""
    _OPTIONS[protocol] = dict(options)


def location(text: str | os.PathLike) -> Location:
    """A location from its text: ``scheme://...`` through fsspec (with the registered options), else a local
    path made absolute. An unknown scheme fails here, naming it."""
    if isinstance(text, (Path, UPath)):
        return text
    text = str(text)
    protocol, sep, _ = text.partition("://")
    if not sep or protocol == "file":
        return Path(text.removeprefix("file://")).expanduser().resolve()
    try:
        return UPath(text, **_OPTIONS.get(protocol, {}))
    except (ValueError, ImportError) as exc:
        raise ValueError(f"{text}: no filesystem for '{protocol}://' ({exc})") from exc


def is_local(path: Location) -> bool:
    return isinstance(path, Path)


def require_bucket(root: Location) -> None:
    """Refuse an object-store root whose bucket does not exist (or these settings cannot see): the lake never
    creates a bucket, and every write would otherwise fail later, one partition at a time, with the store's
    own terse error. A local root needs nothing (its directories are made as files are written)."""
    if is_local(root):
        return
    bucket = root.path.split("/", 1)[0]
    if not root.fs.exists(bucket):
        endpoint = root.storage_options.get("endpoint_url") or "the default endpoint"
        raise FileNotFoundError(
            f"{root}: bucket {bucket!r} does not exist at {endpoint}, or these credentials cannot see it; "
            "create it first (the lake never creates a bucket)"
        )


def put_once(path: Location, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; returns whether this call created it.

    An existing object with the same bytes is left alone (a repeated or concurrent write of the same
    content is harmless); with other bytes it raises ``ConflictingWrite`` naming it.
    """
    created = _create_local(path, data) if is_local(path) else _create_remote(path, data)
    if not created and path.read_bytes() != data:
        raise ConflictingWrite(f"{path}: exists with other content; written objects are never replaced")
    return created


def put_record(path: Location, data: bytes, parts: Iterable[Location]) -> bool:
    """``put_once`` of a record, after checking that every object it names (``parts``) exists."""
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise MissingParts(f"{path}: not written, it names {len(missing)} missing object(s), e.g. {missing[0]}")
    return put_once(path, data)


def listing(base: Location, pattern: str) -> list[Location]:
    """The objects under ``base`` matching ``pattern`` (a relative glob whose ``*`` stays within one name), in
    name order; temporaries excluded (``names``, as locations)."""
    return [base / name for name in names(base, pattern)]


def names(base: Location, pattern: str) -> list[str]:
    """``listing`` as paths relative to ``base`` (POSIX text), in name order. On an object store: one
    recursive listing of the keys starting with the pattern's literal head (``date=2024-03*/...`` lists
    March only), matched here; a glob there would list directory by directory, a request each. A caller
    that needs only the names (a plan over thousands of files) skips building a location per key, which
    costs more CPU than the listing's own parse (benchmarks/RESULTS.md, object store)."""
    if is_local(base):
        return sorted(relative(p, base) for p in base.glob(pattern) if not p.name.startswith(".tmp-"))
    prefix = base.path.rstrip("/") + "/"
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]  # the listing asks only for keys starting so
    head, _, tail = literal.rpartition("/")
    if tail.endswith("="):
        tail = ""  # a bare partition key (``date=``) narrows little: a directory's whole listing is the fast one
    keys = _find(base.fs, prefix + head if head else base.path, tail)
    wanted = pattern.split("/")
    found = (k[len(prefix) :] for k in keys if k.startswith(prefix))
    return sorted(name for name in found if _matches(name.split("/"), wanted))


def _find(filesystem, path: str, prefix: str) -> list[str]:
    """The paths of the objects under ``path`` whose names there start with ``prefix`` (an absent path lists
    nothing). On S3 a whole directory (no ``prefix``) is listed by pyarrow's S3 client, whose parse of the
    listing costs a tenth of the CPU of botocore's (0.08 s against 0.8-1.0 s for 5,040 keys, in the same run:
    benchmarks/RESULTS.md); with a prefix, or should pyarrow fail (a region it cannot resolve, say), by s3fs's
    recursive listing itself (``_lsdir`` without a delimiter): ``find`` wraps the same listing and then
    builds a directory tree of every key, a quarter of the client's CPU for thousands."""
    if "s3" in filesystem.protocol and callable(getattr(filesystem, "_lsdir", None)):
        if not prefix:
            try:
                return _arrow_find(filesystem, path)
            except OSError:
                pass  # s3fs lists it, or raises the store's own error
        return sorted(o["name"] for o in sync(filesystem.loop, filesystem._lsdir, path, delimiter="", prefix=prefix))
    return filesystem.find(path, prefix=prefix)


def _arrow_find(filesystem, path: str) -> list[str]:
    """Every object's path under ``path`` (recursive, one flat listing), by pyarrow's S3 client made with the
    s3fs filesystem's settings (``_arrow_s3``)."""
    from pyarrow import fs as pafs

    infos = _arrow_s3(filesystem).get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def _arrow_s3(filesystem):
    """pyarrow's S3 filesystem with the settings of an s3fs one (endpoint, credentials, region; none given:
    the SDK's own chain), one per process and settings (the AWS SDK's threads do not survive a fork)."""
    from pyarrow import fs as pafs

    options = filesystem.storage_options
    endpoint = options.get("endpoint_url") or ""
    key = (os.getpid(), endpoint, options.get("key"), options.get("secret"), repr(options.get("client_kwargs")))
    if key not in _ARROW:
        scheme, _, host = endpoint.rpartition("://")
        settings = {"endpoint_override": host, "scheme": scheme or "https"} if endpoint else {}
        if options.get("key") or options.get("secret"):
            settings.update(access_key=options.get("key"), secret_key=options.get("secret"))
        region = (options.get("client_kwargs") or {}).get("region_name")
        _ARROW[key] = pafs.S3FileSystem(**settings, **({"region": region} if region else {}))
    return _ARROW[key]


def _matches(parts: list[str], wanted: list[str]) -> bool:
    """Whether a key's components match a glob's, one by one (a ``*`` never spans a ``/``)."""
    return len(parts) == len(wanted) and all(fnmatchcase(n, w) for n, w in zip(parts, wanted, strict=True))


def all_files(base: Location) -> list[Location]:
    """Every file under ``base`` (temporaries included), in name order: one recursive listing on an object store,
    which lists objects only (no request per entry to tell a file from a directory)."""
    if is_local(base):
        return sorted((p for p in base.rglob("*") if p.is_file()), key=str)
    prefix = base.path.rstrip("/") + "/"
    return [
        base.joinpath(*k[len(prefix) :].split("/")) for k in sorted(base.fs.find(base.path)) if k.startswith(prefix)
    ]


def children(base: Location) -> list[Location]:
    """The directories directly under ``base``, in name order (none if it does not exist): one listing, whatever
    lies further below."""
    if is_local(base):
        return sorted((p for p in base.iterdir() if p.is_dir()), key=str) if base.is_dir() else []
    try:
        entries = base.fs.ls(base.path, detail=True)
    except FileNotFoundError:
        return []
    names = sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory")
    return [base / name for name in names]


def _create_local(path: Path, data: bytes) -> bool:
    """Temporary file, fsync, hard link (fails rather than replace), directory fsync; False if it existed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}{path.suffix}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        _fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _create_remote(path: UPath, data: bytes) -> bool:
    """One PUT, conditional where the filesystem supports ``mode='create'``; else a check, then the PUT.

    An object store makes an object visible whole or not at all, so no temporary name is needed.
    """
    try:
        path.fs.pipe_file(path.path, data, mode="create")
        return True
    except FileExistsError:
        return False
    except (TypeError, NotImplementedError):
        if path.exists():
            return False
        path.fs.pipe_file(path.path, data)
        return True


def _fsync_dir(directory: Path) -> None:
    """Make a link in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_many(paths: list[Location]) -> list[bytes]:
    """The bytes of each of ``paths``, in order. On an object store the GETs go out concurrently (fsspec's
    batched ``cat``): a request costs a round trip, and thousands of small files would otherwise cost
    thousands of them in a row. One GET per object on S3: s3fs otherwise asks each object's size first
    (a HEAD) to split a large one into ranges read in parallel, which the concurrency across objects
    makes unnecessary."""
    if not paths or any(is_local(p) for p in paths) or len({(p.protocol, id(p.fs)) for p in paths}) > 1:
        return [p.read_bytes() for p in paths]  # local files, or objects of several stores: one at a time
    options = {"max_concurrency": 1} if paths[0].protocol in ("s3", "s3a") else {}
    found = paths[0].fs.cat([p.path for p in paths], on_error="raise", **options)
    return [found[p.path] for p in paths]


def duckdb_connection(paths: Iterable[Location], config: Mapping | None = None):
    """An in-process DuckDB connection that can read ``paths``: object-store filesystems are registered with
    it (DuckDB reads them through fsspec, no extension downloaded). The caller closes it."""
    import duckdb

    con = duckdb.connect(config=dict(config or {}))
    seen = set()
    for p in paths:
        if not is_local(p) and p.protocol not in seen:
            seen.add(p.protocol)
            con.register_filesystem(p.fs)
    return con


def relative(path: Location, base: Location) -> str:
    """``path`` relative to ``base``, as a POSIX string (the same for a local and an object-store location)."""
    prefix = str(base).rstrip("/") + "/"
    text = str(path)
    if not text.startswith(prefix):
        raise ValueError(f"{path} is not under {base}")
    return text[len(prefix) :]
