"""Batch recommendations: every user's top-k from an export, streamed to CSV or Parquet.

Why this exists: many recommendations are not served live but precomputed nightly (emails,
home-page caches, an A/B test's arms). `recommend_all` runs an export's ``recommend``
signature over every user it knows (or a given list) in fixed-size batches, so memory stays
bounded by one batch whatever the number of users, and streams each batch to the output: CSV
(strings built with vectorised numpy, RFC 4180 quoting) or, when the path ends in
``.parquet``, one Parquet row group per batch (needs pyarrow: ``pip install 'tfrec[parquet]'``;
TensorFlow Datasets usually brings it). Seen items are left out because the export leaves them
out. The file is written under a temporary name in the same directory and renamed when
complete, so a reader never sees half a file.

Output columns, one row per recommendation (``k`` rows per user, fewer only when fewer than
``k`` unseen movies remain): ``user_id, rank`` (1 = best), ``movie_id, score, title``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tfrec.serving.served import ServedExport

COLUMNS = ("user_id", "rank", "movie_id", "score", "title")


@dataclasses.dataclass(frozen=True)
class BatchReport:
    """What `recommend_all` wrote: the file, users, rows, and how fast."""

    path: Path
    users: int
    rows: int
    seconds: float

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else float("inf")


def _csv_field(values: np.ndarray) -> np.ndarray:
    """Strings quoted as RFC 4180 requires (only those holding a comma, quote or newline)."""
    values = np.asarray(values, dtype=str)
    special = (
        (np.char.find(values, ",") >= 0)
        | (np.char.find(values, '"') >= 0)
        | (np.char.find(values, "\n") >= 0)
        | (np.char.find(values, "\r") >= 0)
    )
    if not special.any():
        return values
    quoted = np.char.add(np.char.add('"', np.char.replace(values, '"', '""')), '"')
    return np.where(special, quoted, values)


class _CsvWriter:
    def __init__(self, file):
        self.file = open(file, "w", encoding="utf-8", newline="")
        self.file.write(",".join(COLUMNS) + "\r\n")

    def write(self, columns: dict) -> None:
        if not columns["user_id"].size:
            return
        line = _csv_field(columns["user_id"])
        for name in COLUMNS[1:]:
            if name == "score":
                text = np.char.mod("%.6g", columns[name].astype(np.float64))
            elif name == "rank":
                text = columns[name].astype(str)
            else:
                text = _csv_field(columns[name])
            line = np.char.add(np.char.add(line, ","), text)
        self.file.write("\r\n".join(line.tolist()) + "\r\n")

    def close(self) -> None:
        self.file.close()


class _ParquetWriter:
    def __init__(self, file):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as error:
            raise ImportError(
                f"Writing Parquet needs pyarrow ({error}). Received: an output ending in "
                "'.parquet'. Fix: pip install 'tfrec[parquet]' (or pyarrow), or write .csv."
            ) from error
        self.pa = pa
        self.schema = pa.schema(
            [("user_id", pa.string()), ("rank", pa.int32()), ("movie_id", pa.string()),
             ("score", pa.float32()), ("title", pa.string())]
        )  # fmt: skip
        self.writer = pq.ParquetWriter(str(file), self.schema)

    def write(self, columns: dict) -> None:
        arrays = [self.pa.array(columns[name]) for name in COLUMNS]
        self.writer.write_table(self.pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


def _long_format(user_ids: np.ndarray, ids, scores, titles) -> dict:
    """``[B, k]`` lists as one row per filled slot."""
    keep = ids != ""
    users = np.repeat(user_ids[:, None], ids.shape[1], axis=1)
    ranks = np.broadcast_to(np.arange(1, ids.shape[1] + 1, dtype=np.int32), ids.shape)
    return {
        "user_id": users[keep],
        "rank": ranks[keep],
        "movie_id": ids[keep],
        "score": scores[keep].astype(np.float32),
        "title": titles[keep],
    }


def recommend_all(export, output, k: int = 10, users=None, batch_size: int = 256,
                  progress: bool = True) -> BatchReport:  # fmt: skip
    """Writes every user's top-`k` from `export` to `output` (.csv, or .parquet).

    Args:
      export: A SavedModel path (version or model directory) or a `ServedExport`.
      output: The file to write (replaced atomically; its directory must exist).
      k: Recommendations per user.
      users: User ids to recommend for (default: every user the export knows, each once).
      batch_size: Users per ``recommend`` call (memory is bounded by one batch).
      progress: Show a tqdm progress bar.

    Returns:
      A `BatchReport` (users, rows, seconds, users per second).
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: k={k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer. Received: {batch_size!r}")
    output = Path(output)
    if not output.parent.is_dir():
        raise FileNotFoundError(
            f"The output's directory does not exist. Received: output={str(output)!r}. "
            "Fix: create the directory first."
        )
    served = export if isinstance(export, ServedExport) else ServedExport(export)
    user_ids = served.users() if users is None else np.asarray(users).astype(str)
    if np.unique(user_ids).size != user_ids.size:
        raise ValueError("`users` must be distinct: each user gets one list. Received duplicates.")
    parquet = output.suffix.lower() == ".parquet"
    fd, partial = tempfile.mkstemp(prefix=f".tmp-{output.name}-", dir=output.parent)
    os.close(fd)
    rows, start = 0, time.perf_counter()
    try:
        writer = _ParquetWriter(partial) if parquet else _CsvWriter(partial)
        try:
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=user_ids.size, desc="recommend", unit="user")
            for first in range(0, user_ids.size, batch_size):
                block = user_ids[first : first + batch_size]
                columns = _long_format(block, *served.recommend(block, int(k)))
                writer.write(columns)
                rows += columns["user_id"].size
                if bar is not None:
                    bar.update(block.size)
            if bar is not None:
                bar.close()
        finally:
            writer.close()
        os.chmod(partial, 0o644)
        os.replace(partial, output)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    return BatchReport(output, int(user_ids.size), rows, time.perf_counter() - start)
