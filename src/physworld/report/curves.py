"""Training curves of a run, from its CSV log (`<run>/csv/metrics.csv`, Lightning's CSVLogger, always on)
or, failing that, from its W&B offline log (`<run>/wandb/offline-run-*/run-*.wandb`).

Both readers return {metric key: [(step, value), ...]}, as physworld.plots.curves draws them. The W&B file
is LevelDB's log format (32 KiB blocks of records with a 7-byte header: CRC, length, type
FULL/FIRST/MIDDLE/LAST) holding protobuf `Record`s, of which the `history` ones carry the logged values; it is
read with W&B's own protobuf definitions.
"""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

from physworld.plots.curves import STAGES, Series


def read_csv_log(path: Path) -> Series:
    series: Series = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("epoch", "step") or value in (None, ""):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def wandb_records(path: Path) -> list[bytes]:
    """The raw records of a .wandb file (LevelDB log format, after a 7-byte ':W&B' header)."""
    data, block, pos = path.read_bytes(), 32768, 7
    if not data.startswith(b":W&B"):
        return []
    records, partial = [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 1:  # FULL
            records.append(payload)
        elif kind == 2:  # FIRST
            partial = payload
        elif kind == 3:  # MIDDLE
            partial += payload
        elif kind == 4:  # LAST
            records.append(partial + payload)
        elif kind != 0 or length:  # type 0 with no data is zero padding; anything else is corrupt
            break
    return records


def read_wandb_offline(path: Path) -> Series:
    from wandb.proto import wandb_internal_pb2

    series: Series = {}
    for raw in wandb_records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(raw)
        if record.WhichOneof("record_type") != "history":
            continue
        row = {item.key or "/".join(item.nested_key): item.value_json for item in record.history.item}
        step = int(json.loads(row.get("trainer/global_step", row.get("_step", "0"))))
        for key, value_json in row.items():
            value = json.loads(value_json)
            if key.split("/")[0] in STAGES and isinstance(value, (int, float)):
                series.setdefault(key, []).append((step, float(value)))
    return series


def read_training_log(run: Path) -> tuple[Series, Path | None]:
    """The run's logged series and the file they came from (None when the run has no log)."""
    csv_path = run / "csv" / "metrics.csv"
    if csv_path.is_file():
        return read_csv_log(csv_path), csv_path
    for file in sorted(run.glob("wandb/offline-run-*/run-*.wandb")):
        try:
            return read_wandb_offline(file), file
        except Exception:  # an unreadable or newer W&B format: no curves, but never a failed report
            continue
    return {}, None
