"""Reads an export back with an independent reader and prints it as JSON lines.

    readback.py parquet FILE   pyarrow: first line {"schema": {column: type}, "order": [...]},
                               then one object per row (times as ms since 1970, dates ISO,
                               maps as objects)
    readback.py csv FILE       Python's csv module: first line {"header": [...]}, then one
                               object per row, every value a string

Exit status 3 when pyarrow cannot be imported, so that the test can skip.
"""
import csv
import datetime
import json
import sys


def parquet(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        sys.exit(3)
    f = pq.ParquetFile(path)
    schema = f.schema_arrow
    print(json.dumps({"schema": {c.name: str(c.type) for c in schema}, "order": schema.names}))
    epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    for batch in f.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            out = {}
            for k, v in row.items():
                if isinstance(v, datetime.datetime):
                    v = (v - epoch) // datetime.timedelta(milliseconds=1)
                elif isinstance(v, datetime.date):
                    v = v.isoformat()
                elif k == "traits":
                    v = dict(v)
                out[k] = v
            print(json.dumps(out))


def csv_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        header = next(r)
        print(json.dumps({"header": header}))
        for row in r:
            print(json.dumps(dict(zip(header, row, strict=True))))


if __name__ == "__main__":
    {"parquet": parquet, "csv": csv_rows}[sys.argv[1]](sys.argv[2])
