"""The rawfeat client: DataFrames in and out of a rawfeatd over gRPC.

Times: a pandas/numpy datetime that is naive is taken as UTC; an aware one
is converted to UTC. Strings are parsed by pandas (RFC 3339 offsets are
honoured; no offset means UTC). Numbers are refused (their unit is unknown:
convert them with pd.to_datetime(..., unit=...)). Every time the server
stores or returns is UTC with microsecond precision.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Union

import grpc
import numpy as np
import pandas as pd

from rawfeat.v1 import rawfeat_pb2 as pb
from rawfeat.v1 import rawfeat_pb2_grpc as pbg

TimeLike = Union[None, str, int, float, "pd.Timestamp", "np.datetime64", Any]

# Codes on which an idempotent call is retried.
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Label rows per JoinFeatures message.
_LABEL_BATCH = 8192
# pandas dtypes of feature/field types.
_DTYPES = {"INT64": "Int64", "DOUBLE": "float64", "STRING": "string",
           "BOOL": "boolean"}


class RawfeatError(Exception):
    """A failed call: the gRPC status code (``code``) and the server's
    message (``message``; for an ingest it names rows, fields and
    reasons)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


@dataclasses.dataclass
class IngestSummary:
    """What an ``ingest`` call did: counts over every batch, the row errors
    (with their index in the data given), and the watermark after it."""
    accepted: int = 0
    duplicates: int = 0
    rejected: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    watermark: int = 0
    batches: int = 0


def _micros(values: Any, what: str) -> np.ndarray:
    """Times (a Series, list or scalar) as int64 microseconds since the
    epoch, UTC. Naive means UTC; aware is converted. ValueError naming
    `what` when a time is missing or does not parse."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        # pandas would read them as nanoseconds; the unit is the caller's.
        raise ValueError(f"{what}: numbers are not times (convert with "
                         "pd.to_datetime(values, unit='s'|'ms'|'us'))")
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        t = s
    else:
        try:
            t = pd.to_datetime(s, utc=True)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{what}: {err}") from None
    if getattr(t.dt, "tz", None) is None:
        t = t.dt.tz_localize("UTC")
    else:
        t = t.dt.tz_convert("UTC")
    if t.isna().any():
        raise ValueError(f"{what}: row {int(np.flatnonzero(t.isna())[0])} "
                         "has no time")
    return t.dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)


def _set_time(ts: Any, micros: int) -> None:
    ts.seconds, rem = divmod(int(micros), 1_000_000)
    ts.nanos = rem * 1000


def _timestamp_utc(ts: Any) -> pd.Timestamp:
    return pd.Timestamp(ts.seconds * 1_000_000 + ts.nanos // 1000,
                        unit="us", tz="UTC")


def _value(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    return getattr(v, kind)


def _frame(names: Sequence[str], columns: List[List[Any]],
           types: Dict[str, str]) -> pd.DataFrame:
    """A frame of feature columns with the dtypes of their types (nullable
    Int64, float64, string, boolean; lists stay Python lists)."""
    data = {}
    for name, col in zip(names, columns):
        dtype = _DTYPES.get(types.get(name, ""), "object")
        if dtype == "float64":
            col = [np.nan if x is None else x for x in col]
        data[name] = pd.Series(col, dtype=dtype)
    return pd.DataFrame(data, columns=list(names))


class _Columns:
    """Feature columns filled from columnar answers (``ColumnChunk``: row
    indices and one little-endian array per feature), an array copy per
    chunk and column instead of an object per value. With `n`, rows land
    at their ``row_index`` (a join); without, chunks are appended in order
    (a snapshot)."""

    def __init__(self, names: Sequence[str], types: Dict[str, str],
                 n: Optional[int] = None):
        self.names = list(names)
        self.types = [types.get(name, "") for name in self.names]
        self.n = n
        self.chunks: List[List[tuple]] = [[] for _ in self.names]
        if n is not None:
            self.present = [np.zeros(n, dtype=bool) for _ in self.names]
            self.values = [self._empty(t, n) for t in self.types]

    @staticmethod
    def _empty(t: str, m: int) -> np.ndarray:
        """m null rows of a column of type t."""
        if t == "INT64":
            return np.zeros(m, dtype=np.int64)
        if t == "DOUBLE":
            return np.full(m, np.nan)
        if t == "BOOL":
            return np.zeros(m, dtype=bool)
        return np.full(m, None, dtype=object)  # strings, lists

    @staticmethod
    def _decode(col: Any, m: int) -> np.ndarray:
        """One column of m rows as an array (object for strings/lists;
        null rows hold their placeholder)."""
        kind = col.kind
        if kind == pb.COLUMN_INT64:
            return np.frombuffer(col.fixed, dtype="<i8", count=m)
        if kind == pb.COLUMN_DOUBLE:
            return np.frombuffer(col.fixed, dtype="<f8", count=m)
        if kind == pb.COLUMN_BOOL:
            return np.frombuffer(col.fixed, dtype=np.uint8, count=m).astype(bool)
        if kind == pb.COLUMN_STRING:
            return np.fromiter(col.strings, dtype=object, count=m)
        out = np.full(m, None, dtype=object)
        if kind == pb.COLUMN_LIST:
            lengths = np.frombuffer(col.list_lengths, dtype="<u4", count=m)
            ends = np.cumsum(lengths, dtype=np.int64)
            items = _Columns._decode(col.items, int(ends[-1]) if m else 0)
            present = np.frombuffer(col.items.present, dtype=np.uint8)
            items = [x if p else None for x, p in zip(items.tolist(), present)]
            start = 0
            for i, end in enumerate(ends.tolist()):
                out[i] = items[start:end]
                start = end
        return out

    def add(self, chunk: Any) -> int:
        """Takes one ColumnChunk; returns its number of rows."""
        index = np.frombuffer(chunk.row_index, dtype="<u8")
        m = len(index)
        if len(chunk.columns) != len(self.names) and m:
            raise RawfeatError(grpc.StatusCode.INTERNAL,
                               f"a chunk has {len(chunk.columns)} columns "
                               f"for {len(self.names)} features")
        for j, col in enumerate(chunk.columns):
            present = np.frombuffer(col.present, dtype=np.uint8, count=m) != 0
            if self.n is None:
                values = (self._empty(self.types[j], m)
                          if col.kind == pb.COLUMN_NULL else self._decode(col, m))
                self.chunks[j].append((values, present))
                continue
            self.present[j][index] = present
            if col.kind != pb.COLUMN_NULL:
                self.values[j][index] = self._decode(col, m)
        return m

    def frame(self) -> pd.DataFrame:
        """The columns with the dtypes of their types (nullable Int64,
        float64 with NaN, string, boolean; lists stay Python lists)."""
        if self.n is None:
            self.values, self.present = [], []
            for t, chunks in zip(self.types, self.chunks):
                self.values.append(np.concatenate(
                    [v for v, _ in chunks] or [self._empty(t, 0)]))
                self.present.append(np.concatenate(
                    [p for _, p in chunks] or [np.zeros(0, dtype=bool)]))
        data = {}
        for name, t, values, present in zip(self.names, self.types,
                                            self.values, self.present):
            missing = ~present
            if t == "INT64":
                data[name] = pd.arrays.IntegerArray(values, missing)
            elif t == "DOUBLE":
                values[missing] = np.nan
                data[name] = values
            elif t == "BOOL":
                data[name] = pd.arrays.BooleanArray(values, missing)
            else:
                values[missing] = None
                data[name] = (pd.array(values, dtype="string")
                              if t == "STRING" else values)
        return pd.DataFrame(data, columns=self.names)


class Client:
    """A connection to one rawfeatd.

    Args:
      address: HOST:PORT of the server.
      token: a bearer token (servers started with --auth_file).
      tls: use TLS (the system's roots unless ``root_certificates``).
      root_certificates: PEM bytes of the CA to trust.
      timeout: deadline in seconds of each unary call.
      stream_timeout: deadline in seconds of each streaming call.
      retries: retries of an idempotent call on UNAVAILABLE or
        DEADLINE_EXCEEDED, with exponential backoff (0.1 s doubling to 10 s)
        and full jitter.

    Thread-safe: calls may run concurrently.
    """

    def __init__(self, address: str = "127.0.0.1:7070", token: Optional[str] = None,
                 tls: bool = False, root_certificates: Optional[bytes] = None,
                 timeout: float = 60.0, stream_timeout: float = 3600.0,
                 retries: int = 8):
        options = [("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20)]
        if tls or root_certificates:
            creds = grpc.ssl_channel_credentials(root_certificates)
            self._channel = grpc.secure_channel(address, creds, options)
        else:
            self._channel = grpc.insecure_channel(address, options)
        self._stub = pbg.FeatureStoreStub(self._channel)
        self._metadata = ([("authorization", f"Bearer {token}")]
                          if token else None)
        self._timeout = timeout
        self._stream_timeout = stream_timeout
        self._retries = retries
        self._rng = random.Random()
        # Feature types by (view, service, version), which are immutable.
        self._types: Dict[tuple, Dict[str, str]] = {}

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _call(self, fn: Callable[[], Any], retry: bool = True) -> Any:
        """Runs `fn` (one RPC), retrying retryable failures when `retry`;
        other failures raise RawfeatError."""
        attempt = 0
        while True:
            try:
                return fn()
            except grpc.RpcError as err:
                code = err.code()
                if retry and code in _RETRYABLE and attempt < self._retries:
                    delay = min(10.0, 0.1 * 2 ** attempt)
                    time.sleep(self._rng.uniform(0, delay))
                    attempt += 1
                    continue
                raise RawfeatError(code, err.details() or "") from None

    def _definitions(self) -> Any:
        return self._call(lambda: self._stub.ListDefinitions(
            pb.ListDefinitionsRequest(), timeout=self._timeout,
            metadata=self._metadata))

    @staticmethod
    def _find(infos: Iterable[Any], kind: str, name: str, version: int) -> Any:
        found = None
        for info in infos:
            d = info.definition
            if d.name == name and (version == 0 or d.version == version):
                if found is None or d.version > found.definition.version:
                    found = info
        if found is None:
            raise RawfeatError(
                grpc.StatusCode.NOT_FOUND,
                f"{kind} '{name}' " + ("is not defined" if version == 0
                                       else f"has no version {version}"))
        return found

    def _feature_types(self, defs: Any, view: Optional[str], version: int,
                       service: Optional[str], service_version: int) -> Dict[str, str]:
        """Output feature name -> value type ("INT64", ..., "LIST<T>")."""
        def view_types(name: str, v: int, prefix: str = "",
                       take: Sequence[str] = ()) -> Dict[str, str]:
            info = self._find(defs.views, "view", name, v)
            return {prefix + f.name: t
                    for f, t in zip(info.definition.features, info.feature_types)
                    if not take or f.name in take}
        if service is None:
            return view_types(view, version)
        types: Dict[str, str] = {}
        info = self._find(defs.services, "feature service", service,
                          service_version)
        for part in info.definition.parts:
            types.update(view_types(part.view, part.view_version, part.prefix,
                                    list(part.features)))
        return types

    def _resolve(self, defs: Any, view: Optional[str], service: Optional[str],
                 version: int) -> tuple:
        """(the version of the view or service a read uses -- the latest
        when `version` is 0 -- and its output feature types), so a call
        pins the version whose types decode its answer."""
        if service is None:
            version = self._find(defs.views, "view", view, version).definition.version
        else:
            version = self._find(defs.services, "feature service", service,
                                 version).definition.version
        return version, self._feature_types(defs, view, version, service, version)

    @staticmethod
    def _source(view: Optional[str], service: Optional[str]) -> None:
        if (view is None) == (service is None):
            raise ValueError("give a view or a service (one of them)")

    # --------------------------------------------------------------- calls

    def status(self) -> Dict[str, Any]:
        """The server's status (version, watermark, events per stream, ...)
        as a dict."""
        from google.protobuf import json_format
        r = self._call(lambda: self._stub.GetStatus(
            pb.GetStatusRequest(), timeout=self._timeout,
            metadata=self._metadata))
        return json_format.MessageToDict(r, preserving_proto_field_name=True)

    def ingest(self, stream: str, data: Union[pd.DataFrame, Iterable[Dict[str, Any]]],
               on_invalid: str = "reject_batch", batch_size: int = 1000) -> IngestSummary:
        """Writes events to `stream`, in batches of `batch_size` rows; safe to
        repeat (events are idempotent by event id, so a retried or re-run
        ingest adds nothing).

        `data` is a DataFrame or an iterable of dicts with the stream's
        entity and time columns, an optional ``event_id`` and the fields.
        Field columns must fit their types (INT64: integer dtypes, nullable
        Int64 included; DOUBLE: float or integer; STRING: string or object
        of str; BOOL: bool or boolean): a wrong dtype raises TypeError
        naming the column -- for a DataFrame before anything is sent; an
        iterable is read one batch at a time (never held whole), so its
        rows are checked batch by batch. Missing values (None, NaN, pd.NA)
        are absent fields. Times: see the module docstring.

        on_invalid: "reject_batch" (a batch with any bad row writes nothing
          and raises RawfeatError whose message names the batch's rows and
          each bad row's field and reason; earlier batches stay written) or
          "skip_row" (bad rows are returned in ``rejected`` with their index
          in `data`, the rest written).
        Raises: RawfeatError (server errors), TypeError/ValueError (bad
          data, before its batch is sent).
        """
        if on_invalid not in ("reject_batch", "skip_row"):
            raise ValueError("on_invalid must be 'reject_batch' or 'skip_row'")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        defs = self._definitions()
        sdef = self._find(defs.streams, "stream", stream, 0).definition
        summary = IngestSummary()
        if isinstance(data, pd.DataFrame):
            self._ingest_frame(stream, sdef, data, 0, on_invalid, batch_size,
                               summary)
            return summary
        rows = iter(data)
        offset = 0
        while True:
            batch = list(itertools.islice(rows, batch_size))
            if not batch:
                return summary
            # Object columns keep each value as given (ints with None stay
            # ints); times are inferred so numbers are still refused.
            df = pd.DataFrame(batch, dtype=object)
            if sdef.time_field in df.columns:
                df[sdef.time_field] = df[sdef.time_field].infer_objects()
            self._ingest_frame(stream, sdef, df, offset, on_invalid,
                               batch_size, summary)
            offset += len(batch)

    def _ingest_frame(self, stream: str, sdef: Any, df: pd.DataFrame,
                      offset: int, on_invalid: str, batch_size: int,
                      summary: IngestSummary) -> None:
        """Checks and sends `df` (rows `offset`.. of the caller's data) in
        batches, adding to `summary`."""
        types = {f.name: pb.FieldType.Name(f.type) for f in sdef.fields}
        for col in (sdef.entity_field, sdef.time_field):
            if col not in df.columns:
                raise ValueError(f"no column '{col}' (the stream's "
                                 "entity/time field)")
        known = set(types) | {sdef.entity_field, sdef.time_field, "event_id"}
        unknown = [c for c in df.columns if c not in known]
        if unknown:
            raise ValueError(f"columns {unknown} are not fields of stream "
                             f"'{stream}'")
        columns = {}
        for name, ftype in types.items():
            if name in df.columns:
                columns[name] = self._field_column(df[name], name, ftype)
        times = _micros(df[sdef.time_field], f"column '{sdef.time_field}'")
        entities = df[sdef.entity_field]
        if entities.isna().any():
            raise ValueError(
                f"column '{sdef.entity_field}': row "
                f"{offset + int(np.flatnonzero(entities.isna())[0])} is empty")
        entities = entities.astype(str).tolist()
        ids = (df["event_id"].tolist() if "event_id" in df.columns
               else [None] * len(df))
        mode = pb.SKIP_ROW if on_invalid == "skip_row" else pb.REJECT_BATCH
        kinds = {"INT64": "int64_value", "DOUBLE": "double_value",
                 "STRING": "string_value", "BOOL": "bool_value"}
        for start in range(0, len(df), batch_size):
            end = min(len(df), start + batch_size)
            req = pb.IngestRequest(stream=stream, on_invalid=mode)
            for i in range(start, end):
                ev = req.events.add(entity=entities[i])
                if ids[i] is not None and not pd.isna(ids[i]):
                    ev.event_id = str(ids[i])
                _set_time(ev.event_time, times[i])
                for name, col in columns.items():
                    x = col[i]
                    if x is not None:
                        setattr(ev.fields[name], kinds[types[name]], x)
            try:
                r = self._call(lambda: self._stub.Ingest(
                    req, timeout=self._timeout, metadata=self._metadata))
            except RawfeatError as err:
                # The server counts rows within the batch.
                first = offset + start
                raise RawfeatError(
                    err.code, f"the batch of rows {first}..{offset + end - 1} "
                    f"(row numbers below count from {first}): "
                    f"{err.message}") from None
            summary.accepted += r.accepted
            summary.duplicates += r.duplicates
            summary.watermark = r.watermark
            summary.batches += 1
            summary.rejected += [
                {"index": offset + start + e.row, "event_id": e.event_id,
                 "field": e.field, "reason": e.reason} for e in r.rejected]

    @staticmethod
    def _field_column(s: pd.Series, name: str, ftype: str) -> List[Any]:
        """A field column as Python values (None = absent); TypeError naming
        the column when its dtype does not fit the field's type."""
        kind = s.dtype.kind
        # Python types an object column's values may have.
        accepts = {"INT64": (int, np.integer), "DOUBLE": (int, float, np.integer,
                                                          np.floating),
                   "STRING": (str,), "BOOL": (bool, np.bool_)}[ftype]
        if kind == "O":
            ok = all(pd.isna(x) or (isinstance(x, accepts) and
                                    (ftype == "BOOL" or not isinstance(x, (bool, np.bool_))))
                     for x in s)
        else:
            ok = {"INT64": kind in "iu" or str(s.dtype) in ("Int64", "Int32", "UInt32"),
                  "DOUBLE": kind in "fiu" or str(s.dtype) in ("Int64", "Float64"),
                  "STRING": str(s.dtype) == "string",
                  "BOOL": kind == "b" or str(s.dtype) == "boolean"}[ftype]
        if not ok:
            raise TypeError(f"column '{name}' has dtype {s.dtype}, which does "
                            f"not fit the {ftype} field")
        convert = {"INT64": int, "DOUBLE": float, "STRING": str,
                   "BOOL": bool}[ftype]
        return [None if pd.isna(x) else convert(x)
                for x in s.astype(object).tolist()]

    def get_features(self, view: Optional[str] = None,
                     entities: Optional[Sequence[str]] = None, *,
                     service: Optional[str] = None,
                     keys: Optional[Sequence[Dict[str, str]]] = None,
                     as_of: TimeLike = None, watermark: int = 0,
                     version: int = 0) -> pd.DataFrame:
        """Features of a view for a few entities (or of a feature service
        for rows of keys), as of `as_of` (default now) at `watermark`
        (default latest). One row per entity/key row, in order; the frame's
        ``attrs`` hold watermark, version, as_of and the view or service.
        Raises RawfeatError (e.g. NOT_FOUND, INVALID_ARGUMENT)."""
        self._source(view, service)
        req = pb.GetFeaturesRequest(watermark=watermark)
        if service is None:
            req.view, req.version = view, version
            req.entities.extend(str(e) for e in entities or [])
        else:
            req.service, req.service_version = service, version
            for k in keys or []:
                req.key_rows.add().keys.update({c: str(v) for c, v in k.items()})
        if as_of is not None:
            _set_time(req.as_of, _micros([as_of], "as_of")[0])
        r = self._call(lambda: self._stub.GetFeatures(
            req, timeout=self._timeout, metadata=self._metadata))
        # A (name, version) never changes: its types are fetched once.
        key = (view, service, r.version)
        types = self._types.get(key)
        if types is None:
            types = self._feature_types(self._definitions(), view, r.version,
                                        service, r.version)
            self._types[key] = types
        names = list(r.feature_names)
        columns: List[List[Any]] = [[] for _ in names]
        for row in r.rows:
            for j, v in enumerate(row.values):
                columns[j].append(_value(v))
        df = _frame(names, columns, types)
        if service is None:
            df.insert(0, "entity", pd.Series([row.entity for row in r.rows],
                                             dtype="string"))
        df.attrs.update(self._attrs(view, service, r.version, r.watermark,
                                    _timestamp_utc(r.as_of)))
        return df

    @staticmethod
    def _attrs(view: Optional[str], service: Optional[str], version: int,
               watermark: int, as_of: Optional[pd.Timestamp] = None) -> Dict[str, Any]:
        a: Dict[str, Any] = {"watermark": int(watermark), "version": int(version)}
        a["service" if service is not None else "view"] = service or view
        if as_of is not None:
            a["as_of"] = as_of
        return a

    def snapshot(self, view: Optional[str] = None, as_of: TimeLike = None, *,
                 service: Optional[str] = None, watermark: int = 0,
                 partition: Optional[tuple] = None,
                 version: int = 0) -> pd.DataFrame:
        """Every entity with an event before `as_of` (default now) visible
        at `watermark` (default latest), in entity byte order, with its
        features as of `as_of`; `partition` = (index, count) takes one
        entity-hash partition. Chunks are decoded as they arrive. A service
        must key every part by one column. ``attrs`` as in get_features.
        Raises RawfeatError."""
        self._source(view, service)
        version, types = self._resolve(self._definitions(), view, service,
                                       version)
        req = pb.SnapshotRequest(watermark=watermark, columnar=True)
        if service is None:
            req.view, req.version = view, version
        else:
            req.service, req.service_version = service, version
        if as_of is not None:
            _set_time(req.as_of, _micros([as_of], "as_of")[0])
        if partition is not None:
            req.partition.index, req.partition.count = partition

        def run() -> tuple:
            columns: Optional[_Columns] = None
            entities: List[str] = []
            meta = (0, 0, None)
            for chunk in self._stub.Snapshot(req, timeout=self._stream_timeout,
                                             metadata=self._metadata):
                if chunk.feature_names:
                    columns = _Columns(chunk.feature_names, types)
                meta = (chunk.version, chunk.watermark, chunk.as_of)
                # The watermark the first chunk used pins a retry.
                req.watermark = chunk.watermark
                entities.extend(chunk.entities)
                if chunk.HasField("columns"):
                    columns.add(chunk.columns)
            return columns, entities, meta
        columns, entities, (ver, wm, as_of_ts) = self._call(run)
        df = columns.frame()
        df.insert(0, "entity", pd.array(entities, dtype="string"))
        df.attrs.update(self._attrs(view, service, ver, wm,
                                    _timestamp_utc(as_of_ts) if as_of_ts else None))
        return df

    def join(self, view: Optional[str] = None, labels: Optional[pd.DataFrame] = None,
             entity_column: Optional[str] = None, time_column: Optional[str] = None, *,
             service: Optional[str] = None, watermark: int = 0,
             version: int = 0) -> pd.DataFrame:
        """A point-in-time correct training set: every row of `labels` with
        the features as of its own time (events stamped before it, visible
        at `watermark`), in input order. The result is `labels` as given
        (columns and dtypes kept, index reset) plus the feature columns.

        A view join reads each row's entity from `entity_column` (default:
        the stream's entity field); a service join reads every part's key
        column (a missing value gives that part nulls). `time_column`
        defaults to the stream's time field. Times: see the module
        docstring. ``attrs`` hold watermark, version and view or service.
        Raises RawfeatError, ValueError (a missing column, entity or time).
        """
        self._source(view, service)
        if labels is None:
            raise ValueError("labels: a DataFrame is required")
        defs = self._definitions()
        first = pb.JoinFeaturesRequest(watermark=watermark)
        key_cols: List[str] = []
        if service is None:
            info = self._find(defs.views, "view", view, version)
            sdef = self._find(defs.streams, "stream", info.definition.stream, 0).definition
            entity_column = entity_column or sdef.entity_field
            time_column = time_column or sdef.time_field
            # The version whose feature types decode the answer.
            version = info.definition.version
            first.view, first.version = view, version
        else:
            info = self._find(defs.services, "feature service", service, version)
            version = info.definition.version
            for part in info.definition.parts:
                if part.key not in key_cols:
                    key_cols.append(part.key)
                if time_column is None:
                    v = self._find(defs.views, "view", part.view, part.view_version)
                    time_column = self._find(defs.streams, "stream",
                                             v.definition.stream, 0).definition.time_field
            first.service, first.service_version = service, version
            first.key_columns.extend(key_cols)
        for col in [time_column] + (key_cols if service else [entity_column]):
            if col not in labels.columns:
                raise ValueError(f"labels: no column '{col}'")
        times = _micros(labels[time_column], f"labels column '{time_column}'")
        if service is None:
            ents = labels[entity_column]
            if ents.isna().any():
                raise ValueError(f"labels column '{entity_column}': row "
                                 f"{int(np.flatnonzero(ents.isna())[0])} is empty")
            keys = [ents.astype(str).tolist()]
        else:
            keys = [["" if pd.isna(x) else str(x) for x in labels[c].tolist()]
                    for c in key_cols]
        n = len(labels)
        first.columnar = True
        _, types = self._resolve(defs, view, service, version)

        def requests() -> Iterator[Any]:
            # Labels as columns, _LABEL_BATCH rows per message.
            msg = pb.JoinFeaturesRequest()
            msg.CopyFrom(first)
            for start in range(0, n, _LABEL_BATCH):
                end = min(n, start + _LABEL_BATCH)
                msg.labels.times_us.extend(times[start:end].tolist())
                if service is None:
                    msg.labels.entities.extend(keys[0][start:end])
                else:
                    msg.labels.key_values.extend(itertools.chain.from_iterable(
                        zip(*(k[start:end] for k in keys))))
                yield msg
                msg = pb.JoinFeaturesRequest()
            if n == 0:
                yield msg

        def run() -> tuple:
            columns: Optional[_Columns] = None
            meta = (0, 0)
            got = 0
            for resp in self._stub.JoinFeatures(requests(),
                                                timeout=self._stream_timeout,
                                                metadata=self._metadata):
                if resp.feature_names:
                    columns = _Columns(resp.feature_names, types, n)
                meta = (resp.version, resp.watermark)
                first.watermark = resp.watermark  # a retry reads the same
                if resp.HasField("columns"):
                    got += columns.add(resp.columns)
            if got != n:
                raise RawfeatError(grpc.StatusCode.INTERNAL,
                                   f"sent {n} label rows, received {got}")
            return columns, meta
        columns, (ver, wm) = self._call(run)
        df = pd.concat([labels.reset_index(drop=True), columns.frame()], axis=1)
        df.attrs.update(self._attrs(view, service, ver, wm))
        return df

    def read_events(self, stream: str, *, after_seq: int = 0, watermark: int = 0,
                    from_time: TimeLike = None, to_time: TimeLike = None,
                    entity: Optional[str] = None) -> Iterator[pd.DataFrame]:
        """Raw events of `stream` in seq order, as DataFrame chunks with
        columns seq, event_id, the entity and time fields (UTC) and the
        fields (absent = missing). Raises RawfeatError."""
        defs = self._definitions()
        sdef = self._find(defs.streams, "stream", stream, 0).definition
        req = pb.ReadEventsRequest(stream=stream, after_seq=after_seq,
                                   watermark=watermark, entity=entity or "")
        if from_time is not None:
            _set_time(req.from_time, _micros([from_time], "from_time")[0])
        if to_time is not None:
            _set_time(req.to_time, _micros([to_time], "to_time")[0])
        types = {f.name: pb.FieldType.Name(f.type) for f in sdef.fields}
        try:
            for chunk in self._stub.ReadEvents(req, timeout=self._stream_timeout,
                                               metadata=self._metadata):
                rows = {"seq": [], "event_id": [], sdef.entity_field: [],
                        sdef.time_field: []}
                fields: Dict[str, List[Any]] = {f: [] for f in types}
                for ev in chunk.events:
                    rows["seq"].append(ev.seq)
                    rows["event_id"].append(ev.event_id)
                    rows[sdef.entity_field].append(ev.entity)
                    rows[sdef.time_field].append(ev.event_time.seconds * 1_000_000 +
                                                 ev.event_time.nanos // 1000)
                    for f in types:
                        fields[f].append(_value(ev.fields[f]) if f in ev.fields
                                         else None)
                df = pd.DataFrame({
                    "seq": pd.Series(rows["seq"], dtype="uint64"),
                    "event_id": pd.Series(rows["event_id"], dtype="string"),
                    sdef.entity_field: pd.Series(rows[sdef.entity_field],
                                                 dtype="string"),
                    sdef.time_field: pd.to_datetime(rows[sdef.time_field],
                                                    unit="us", utc=True),
                })
                extra = _frame(list(types), [fields[f] for f in types], types)
                df = pd.concat([df, extra], axis=1)
                df.attrs.update({"stream": stream, "watermark": chunk.watermark})
                yield df
        except grpc.RpcError as err:
            raise RawfeatError(err.code(), err.details() or "") from None
