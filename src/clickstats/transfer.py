"""Events to and from files: JSON lines, CSV and Parquet (docs/CLI.md); exported also as
OpenSearch UBI `_bulk` NDJSON (integrations/ubi_export.py), which is not read back.

An export is one file holding both event types in one table (`COLUMNS`; the fields of the
other type are null). Every value survives the trip exactly: timestamps are kept to the
millisecond (all the stores keep), floats as their shortest exact text (`repr`) or as float64.
An import validates each row as the API does, stores the good ones in batches, and reports
the rest with the field and the problem. Stores ignore an event id they already hold, which
is what makes importing the same file twice harmless.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal, cast, get_args

import orjson

from clickstats.events import (
    ActionEvent,
    ClickEvent,
    ConversionEvent,
    SearchImpression,
    parse_events,
    utcnow,
)
from clickstats.store.base import AppendStatus, EventRow, EventStore
from clickstats.store.fields import (
    ACTION_FIELDS,
    CLICK_FIELDS,
    CONVERSION_FIELDS,
    IMPRESSION_FIELDS,
)

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[Format, ...] = get_args(Format)
#: What export writes: the formats above, and OpenSearch UBI `_bulk` NDJSON ("ubi").
ExportFormat = Literal[Format, "ubi"]
UBI_IS_EXPORT_ONLY = (
    "the ubi format (OpenSearch _bulk NDJSON) is written by export, not read by import: "
    "send UBI records to POST /ubi_queries and /ubi_events"
)
EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

#: How an export orders its columns: ids and shared fields first, then the impression's, the
#: click's, the conversion's and the action's; a field the models gain later goes at the end.
_ORDER = (
    "event_id", "search_id", "user_id", "session_id", "variant", "timestamp",
    "query", "results_count", "response_time_ms", "results", "teams",
    "product_id", "rank", "search_query", "source",
    "subtype", "product_ids", "prices", "quantities", "discounts", "value", "currency",
    "name", "position", "message",
)  # fmt: skip
_STORED = {
    f.name: f for f in (*IMPRESSION_FIELDS, *CLICK_FIELDS, *CONVERSION_FIELDS, *ACTION_FIELDS)
}
#: The unified table: every stored field of every event type (store.fields), `type` first.
COLUMNS: tuple[str, ...] = (
    "type",
    *sorted(_STORED, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER)),
)
FIELDS: dict[str, tuple[str, ...]] = {
    "impression": tuple(c for c in COLUMNS if c in SearchImpression.model_fields),
    "click": tuple(c for c in COLUMNS if c in ClickEvent.model_fields),
    "conversion": tuple(c for c in COLUMNS if c in ConversionEvent.model_fields),
    "action": tuple(c for c in COLUMNS if c in ActionEvent.model_fields),
}
LIST_COLUMNS = tuple(
    n for n in COLUMNS if n in _STORED and _STORED[n].kind in ("texts", "integers", "numbers")
)
#: Number columns: CSV has only text, and events take numbers only as numbers.
NUMBER_COLUMNS = tuple(
    n for n in COLUMNS if n in _STORED and _STORED[n].kind in ("integer", "number")
)
#: Text fields where "" is a value (the others are ids, which cannot be empty): in a CSV cell
#: of one of these, of the row's own type, empty means "", not null.
TEXT_COLUMNS = ("query", "search_query", "message")
#: Without these a re-import would not be idempotent (a new id) or would move events (now).
REQUIRED = ("event_id", "timestamp")

IMPORT_BATCH_ROWS = 5_000
#: Row/line numbers kept per rejection reason.
EXAMPLES = 5
#: A results list of 1,000 ids of 128 characters is ~130 kB in one CSV cell (csv's default
#: limit is 128 kB).
CSV_FIELD_LIMIT = 16 * 1024 * 1024

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class TransferError(RuntimeError):
    """The file cannot be read or written as asked (one line, meant for the user)."""


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2026-11-01`, `2026-11-01T08:00` (UTC unless it says otherwise), or `7d`, `12h`, `2w`
    before now."""
    relative = _RELATIVE.match(text.strip().lower())
    if relative:
        amount, unit = int(relative[1]), _UNITS[relative[2]]
        try:
            return (now or utcnow()) - timedelta(**{unit: amount})
        except OverflowError:
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a date, a date and time (ISO 8601) nor a span like 7d, 12h, 2w"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def file_format(path: str | Path, given: str | None = None) -> Format:
    """The format asked for, else the one the file's extension names."""
    if given is not None:
        if given == "ubi":
            raise TransferError(UBI_IS_EXPORT_ONLY)
        if given not in FORMATS:
            raise TransferError(f"unknown format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise TransferError(
            f"cannot tell the format of {path} from its extension: name it .jsonl, .csv or "
            f".parquet, or give --format {'|'.join(FORMATS)}"
        )
    return EXTENSIONS[suffix]


def export_format(path: str | Path, given: str | None = None) -> ExportFormat:
    """`file_format`, and "ubi" when asked for (never from an extension: .ndjson is jsonl)."""
    return "ubi" if given == "ubi" else file_format(path, given)


def iso_millis(value: datetime) -> str:
    """`2026-11-28T17:50:58.123Z`: UTC, to the millisecond, as browsers write it."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# -- export --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    format: ExportFormat
    impressions: int
    clicks: int
    conversions: int = 0
    actions: int = 0
    #: ubi: the documents written per index (a search is a query and its impressions)
    documents: dict[str, int] | None = None

    @property
    def events(self) -> int:
        return self.impressions + self.clicks + self.conversions + self.actions


class _Writer:
    """Writes batches of rows as one format into `file`, which it does not close."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def documents(self) -> dict[str, int] | None:
        """Documents per index, for a format that has them."""
        return None

    def write(self, rows: list[EventRow]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Write what the format ends with (idempotent)."""


class _JsonlWriter(_Writer):
    def write(self, rows: list[EventRow]) -> None:
        lines = []
        for row in rows:
            obj = {name: row.get(name) for name in FIELDS[row["type"]]}
            obj["timestamp"] = iso_millis(row["timestamp"])
            lines.append(orjson.dumps(obj))
        self.file.write(b"\n".join(lines) + b"\n")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return iso_millis(value)
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _CsvWriter(_Writer):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.text = io.StringIO(newline="")
        self.csv = csv.writer(self.text, lineterminator="\n")
        self._emit([COLUMNS])

    def _emit(self, rows: Iterable[Iterable[str]]) -> None:
        self.csv.writerows(rows)
        self.file.write(self.text.getvalue().encode("utf-8"))
        self.text.seek(0)
        self.text.truncate()

    def write(self, rows: list[EventRow]) -> None:
        self._emit([_csv_cell(row.get(name)) for name in COLUMNS] for row in rows)


def arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {
        "text": pa.string(),
        "integer": pa.int64(),
        "number": pa.float64(),
        "texts": pa.list_(pa.string()),
        "integers": pa.list_(pa.int64()),
        "numbers": pa.list_(pa.float64()),
        "time": pa.timestamp("ms", tz="UTC"),
    }
    return pa.schema(
        [(n, kinds[_STORED[n].kind] if n in _STORED else pa.string()) for n in COLUMNS]
    )


class _ParquetWriter(_Writer):
    """A row group per batch, written to `file` as soon as the batch is."""

    def __init__(self, file: IO[bytes]) -> None:
        import pyarrow.parquet as pq

        super().__init__(file)
        self.schema = arrow_schema()
        self.writer = pq.ParquetWriter(file, self.schema, compression="zstd")

    def write(self, rows: list[EventRow]) -> None:
        import pyarrow as pa

        columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
        self.writer.write_table(pa.Table.from_pydict(columns, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


class _UbiWriter(_Writer):
    def __init__(self, file: IO[bytes]) -> None:
        from clickstats.integrations.ubi_export import UbiBulkWriter

        super().__init__(file)
        self.bulk = UbiBulkWriter(file)

    def write(self, rows: list[EventRow]) -> None:
        self.bulk.write(rows)

    def documents(self) -> dict[str, int]:
        return self.bulk.documents


_WRITERS: dict[ExportFormat, type[_Writer]] = {
    "jsonl": _JsonlWriter,
    "csv": _CsvWriter,
    "parquet": _ParquetWriter,
    "ubi": _UbiWriter,
}


class _Pieces(io.RawIOBase):
    """A write-only file whose bytes are taken away piece by piece; it still tells the
    position in the whole file (Parquet's footer records the offset of every row group)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []
        self.position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        piece = bytes(data)
        self.parts.append(piece)
        self.position += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self.position

    def take(self) -> bytes:
        piece = b"".join(self.parts)
        self.parts.clear()
        return piece


def export_stream(batches: Iterable[list[EventRow]], fmt: ExportFormat) -> Iterator[bytes]:
    """The bytes of the file `export_file` writes, a piece per batch of rows (a Parquet row
    group each): an export streamed without holding it (GET /analytics/export)."""
    sink = _Pieces()
    writer = _WRITERS[fmt](cast(IO[bytes], sink))
    for rows in batches:
        writer.write(rows)
        if piece := sink.take():
            yield piece
    writer.close()
    if piece := sink.take():
        yield piece


def export_file(
    store: EventStore,
    path: str | Path,
    fmt: ExportFormat,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write every event at or after `since` to `path`; `progress(events written so far)`.

    The file appears only when complete: it is written beside the target and renamed.
    """
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    counts = dict.fromkeys(FIELDS, 0)
    try:
        file = partial.open("wb")
    except OSError as exc:
        raise TransferError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with file:
            writer = _WRITERS[fmt](file)
            try:
                for rows in store.export(since=since):
                    writer.write(rows)
                    for row in rows:
                        counts[row["type"]] += 1
                    if progress is not None:
                        progress(sum(counts.values()))
            finally:
                writer.close()
        os.replace(partial, path)
    except OSError as exc:
        raise TransferError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    return ExportSummary(
        path,
        fmt,
        counts["impression"],
        counts["click"],
        counts["conversion"],
        counts["action"],
        documents=writer.documents(),
    )


# -- import --------------------------------------------------------------------------------------

Problem = tuple[str | None, str]  # (field, problem), as clickstats.events.parse_events says


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a file, where it is (`line 12`, `row 7`), and either the event's fields or
    the problem that kept it from becoming one."""

    where: str
    item: dict[str, Any] | None = None
    problem: Problem | None = None


@dataclass(slots=True)
class Reason:
    """One kind of rejection: how many rows had it, and where the first few are."""

    field: str | None
    problem: str
    rows: int = 0
    examples: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        where = ", ".join(self.examples) + (", ..." if self.rows > len(self.examples) else "")
        return f"{self.field or '(row)'}: {self.problem} ({self.rows:,} rows: {where})"


@dataclass(slots=True)
class ImportSummary:
    path: Path
    format: Format
    read: int = 0  # rows in the file (blank lines aside)
    imported: int = 0  # stored now
    duplicates: int = 0  # already in the store (same event id)
    rejected: int = 0  # not valid events
    _reasons: dict[Problem, Reason] = dataclasses.field(default_factory=dict)

    @property
    def reasons(self) -> list[Reason]:
        """Most frequent first."""
        return sorted(self._reasons.values(), key=lambda r: (-r.rows, r.field or "", r.problem))

    def reject(self, where: str, problems: Iterable[Problem]) -> None:
        self.rejected += 1
        for key in dict.fromkeys(problems):  # a problem counts once per row
            reason = self._reasons.setdefault(key, Reason(*key))
            reason.rows += 1
            if len(reason.examples) < EXAMPLES:
                reason.examples.append(where)


def _event_item(where: str, raw: dict[str, Any]) -> Row:
    """The row's non-null fields (null means "not given": the model's default applies)."""
    item = {name: value for name, value in raw.items() if value is not None}
    for name in REQUIRED:
        if name not in item:
            return Row(where, problem=(name, "is missing: an import needs it on every row"))
    return Row(where, item)


def _jsonl_rows(file: IO[bytes]) -> Iterator[tuple[Row, int]]:
    done = 0
    for number, line in enumerate(file, start=1):
        done += len(line)
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            yield Row(where, problem=(None, "is not valid JSON")), done
            continue
        if not isinstance(value, dict):
            yield Row(where, problem=(None, "is not a JSON object")), done
        else:
            yield _event_item(where, value), done


def _number(cell: str) -> int | float | str:
    """A number cell as the number it says; other text stays text, for the event's validation
    to refuse with the field's name."""
    for kind in (int, float):
        try:
            return kind(cell)
        except ValueError:
            pass
    return cell


def _csv_row(where: str, header: list[str], cells: list[str]) -> Row:
    if len(cells) != len(header):
        return Row(where, problem=(None, f"has {len(cells)} cells; the header has {len(header)}"))
    raw = dict(zip(header, cells, strict=True))
    own = FIELDS.get(raw.get("type", ""), ())
    values: dict[str, Any] = {}
    for name, cell in raw.items():
        if cell == "":
            values[name] = "" if name in TEXT_COLUMNS and name in own else None
        elif name in NUMBER_COLUMNS:
            values[name] = _number(cell)
        elif name in LIST_COLUMNS:
            try:
                values[name] = json.loads(cell)
            except json.JSONDecodeError:
                values[name] = None
            if not isinstance(values[name], list):
                return Row(where, problem=(name, 'is not a JSON array, e.g. ["p1", "p2"]'))
        else:
            values[name] = cell
    return _event_item(where, values)


def _check_columns(names: Iterable[str], path: Path) -> None:
    names = list(names)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown or "type" not in names:
        problem = f"unknown column(s) {', '.join(unknown)}" if unknown else "no column 'type'"
        raise TransferError(f"{path}: {problem}; the columns are {', '.join(COLUMNS)}")


def _csv_rows(file: IO[bytes], path: Path) -> Iterator[tuple[Row, int]]:
    done = 0
    undecodable: set[int] = set()

    def lines() -> Iterator[str]:
        nonlocal done
        for number, line in enumerate(file, start=1):
            done += len(line)
            try:
                yield line.decode("utf-8")
            except UnicodeDecodeError:
                undecodable.add(number)  # its record is rejected below
                yield line.decode("utf-8", "replace")

    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(lines())
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise TransferError(f"{path}: the header is not valid CSV: {exc}") from exc
    if header:
        header[0] = header[0].removeprefix("\ufeff")  # a byte order mark, as Excel writes
    _check_columns(header, path)
    last = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(f"line {last + 1}", problem=(None, f"is not valid CSV: {exc}")), done
            last = reader.line_num
            continue
        first, last = last + 1, reader.line_num
        if not cells:
            continue
        where = f"line {first}"
        if undecodable.intersection(range(first, last + 1)):
            yield Row(where, problem=(None, "is not valid UTF-8")), done
        else:
            yield _csv_row(where, header, cells), done


class _Source:
    """A file opened for import: its rows in chunks, with progress in `unit`s of `total`."""

    def __init__(self, path: Path, fmt: Format) -> None:
        self.path, self.format = path, fmt
        self.unit = "rows" if fmt == "parquet" else "bytes"
        try:
            if fmt == "parquet":
                import pyarrow as pa
                import pyarrow.parquet as pq

                try:
                    self.parquet = pq.ParquetFile(path)
                except pa.ArrowException as exc:
                    raise TransferError(f"{path} is not a Parquet file: {exc}") from exc
                self.total = self.parquet.metadata.num_rows
                _check_columns(self.parquet.schema_arrow.names, path)
            else:
                self.file = path.open("rb")
                self.total = os.fstat(self.file.fileno()).st_size
        except OSError as exc:
            raise TransferError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self.format == "parquet":
            self.parquet.close()
        else:
            self.file.close()

    def _rows(self) -> Iterator[tuple[Row, int]]:
        if self.format == "jsonl":
            yield from _jsonl_rows(self.file)
        elif self.format == "csv":
            yield from _csv_rows(self.file, self.path)
        else:
            yield from self._parquet_rows()

    def _parquet_rows(self) -> Iterator[tuple[Row, int]]:
        import pyarrow as pa

        number = 0
        try:
            for batch in self.parquet.iter_batches(batch_size=IMPORT_BATCH_ROWS):
                for raw in batch.to_pylist():
                    number += 1
                    yield _event_item(f"row {number}", raw), number
        except pa.ArrowException as exc:
            raise TransferError(f"{self.path}: cannot read past row {number}: {exc}") from exc

    def chunks(self, size: int) -> Iterator[tuple[list[Row], int]]:
        """Lists of at most `size` rows, each with how far into the file it reaches."""
        chunk: list[Row] = []
        done = 0
        try:
            for row, done in self._rows():
                chunk.append(row)
                if len(chunk) >= size:
                    yield chunk, done
                    chunk = []
        except OSError as exc:
            raise TransferError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        yield chunk, self.total if self.unit == "bytes" else done


def _store_chunk(store: EventStore, rows: list[Row], summary: ImportSummary) -> None:
    summary.read += len(rows)
    items: list[dict[str, Any]] = []
    wheres: list[str] = []
    for row in rows:
        if row.item is None:
            assert row.problem is not None
            summary.reject(row.where, [row.problem])
        else:
            items.append(row.item)
            wheres.append(row.where)
    good, bad = parse_events(items)
    for rejection in bad:
        problems = [(e["field"], e["problem"]) for e in rejection.errors]
        summary.reject(wheres[rejection.index], problems)
    if good:
        statuses = store.append_sync([event for _, event in good])
        accepted = sum(status is AppendStatus.ACCEPTED for status in statuses)
        summary.imported += accepted
        summary.duplicates += len(statuses) - accepted


def import_file(
    store: EventStore,
    path: str | Path,
    fmt: Format | None = None,
    *,
    batch_rows: int = IMPORT_BATCH_ROWS,
    progress: Callable[[int, int, str], None] | None = None,
) -> ImportSummary:
    """Store the valid events of a file (JSON lines, CSV or Parquet), `batch_rows` at a time.

    `progress(done, total, unit)` follows the reading: bytes for JSON lines and CSV, rows
    for Parquet. Raises TransferError for a file that cannot be read at all; a bad row is a
    rejection in the summary, not an error.
    """
    path = Path(path)
    fmt = file_format(path, fmt)
    if path.is_dir():
        raise TransferError(f"{path} is a directory, not a file")
    source = _Source(path, fmt)
    summary = ImportSummary(path, fmt)
    try:
        for rows, done in source.chunks(batch_rows):
            _store_chunk(store, rows, summary)
            if progress is not None:
                progress(done, source.total, source.unit)
    finally:
        source.close()
    return summary
