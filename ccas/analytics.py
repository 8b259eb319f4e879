"""`ccas analytics query "SQL"`: DuckDB over the Parquet files the pipeline exports to S3 (docs/analytics.md).

Each exported table (scoring_results, agent_scorecards) is a view over its files under `s3://<bucket>/analytics/<table>/`, with
the `date=` folder as a column. The files are listed with the project's S3 client (`--since`/`--until` keep only the date=
folders in range, so DuckDB opens no other file), and DuckDB reads them in place, over HTTPS, with its httpfs extension.

DuckDB normally downloads that extension from its own repository, which our machines cannot reach; the PyPI package
duckdb-extension-httpfs carries the same binary. It is a third party's repackaging, so the extension is loaded from the
package's file with unsigned extensions refused: DuckDB checks the binary's signature against its own keys and refuses anything
it did not sign. The package's version must equal duckdb's (requirements.txt pins both). Nothing is copied to the analyst's disk.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from botocore.exceptions import BotoCoreError, ClientError

from core.config import add_flags, load_for_command, secret
from core.s3 import s3_client
from core.settings import S3Settings
from pipeline.transforms.analytics import ANALYTICS_PREFIX, TABLES

SECRET_FIELDS = ("s3_access_key", "s3_secret_key")  # environment only: a command line shows in `ps`
BAD_SQL = 2
FAILED = 1


class AnalyticsQuerySettings(S3Settings):
    """Where the files are: the bucket, its endpoint, CA file and keys (read access to analytics/ suffices)."""


def _literal(text: str) -> str:
    """A SQL string literal (DuckDB's SET, LOAD and CREATE SECRET take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def httpfs_extension() -> Path:
    import duckdb
    import duckdb_extension_httpfs

    folder = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    path = folder / f"v{duckdb.__version__}" / "httpfs.duckdb_extension"
    if not path.is_file():
        shipped = ", ".join(sorted(p.name for p in folder.iterdir())) if folder.is_dir() else "none"
        raise RuntimeError(f"duckdb {duckdb.__version__} has no httpfs extension in duckdb-extension-httpfs (it ships "
                           f"{shipped}): install the two at the same version (requirements.txt)")
    return path


def _credentials(settings: AnalyticsQuerySettings) -> dict[str, str]:
    """KEY_ID, SECRET (and SESSION_TOKEN) of the S3 secret: the settings' keys, else boto3's credential chain (a profile, an
    IAM role), which DuckDB alone does not walk."""
    if settings.s3_access_key and settings.s3_secret_key:
        return {"KEY_ID": secret(settings.s3_access_key), "SECRET": secret(settings.s3_secret_key)}
    import boto3

    found = boto3.Session().get_credentials()
    if found is None:
        return {}
    frozen = found.get_frozen_credentials()
    return {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key, **({"SESSION_TOKEN": frozen.token} if frozen.token else {})}


def connect(settings: AnalyticsQuerySettings) -> Any:
    """An in-memory DuckDB that reads the bucket over S3 with the settings' endpoint, keys and CA file."""
    import duckdb

    connection = duckdb.connect(config={"allow_unsigned_extensions": False, "autoinstall_known_extensions": False,
                                        "autoload_known_extensions": False})
    connection.execute(f"LOAD {_literal(str(httpfs_extension()))}")
    connection.execute("SET TimeZone = 'UTC'")  # timestamps print in UTC, as the files hold them, whatever the machine's zone
    if settings.s3_ca_file:
        connection.execute(f"SET ca_cert_file = {_literal(settings.s3_ca_file)}")
    options = {"TYPE": "s3", **_credentials(settings)}
    if settings.s3_endpoint:  # an S3-compatible server: path-style, as core.s3 addresses it
        endpoint = urlsplit(settings.s3_endpoint)
        options.update(ENDPOINT=endpoint.netloc, URL_STYLE="path", USE_SSL="true" if endpoint.scheme == "https" else "false",
                       REGION=settings.s3_region or "us-east-1")
    elif settings.s3_region:
        options["REGION"] = settings.s3_region
    body = ", ".join(f"{name} {value if name in ('TYPE', 'USE_SSL') else _literal(value)}" for name, value in options.items())
    connection.execute(f"CREATE SECRET ccas_s3 ({body})")
    return connection


def table_location(bucket: str, table: str) -> str:
    return f"s3://{bucket}/{ANALYTICS_PREFIX}{table}/"


def table_files(client: Any, bucket: str, table: str, since: date | None, until: date | None) -> list[str]:
    """The s3:// URLs of the table's Parquet files whose date= folder lies in [since, until]. Listed here rather than globbed
    by DuckDB: a glob cannot say "these dates", and DuckDB reads the footer of every file it is given (union_by_name)."""
    prefix = f"{ANALYTICS_PREFIX}{table}/date="
    # Keys sort by date: the listing starts at `since` and stops after `until`.
    start = {"StartAfter": f"{prefix}{since.isoformat()}"} if since else {}
    urls = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, **start):
        for item in page.get("Contents", []):
            key = item["Key"]
            folder, _, name = key[len(prefix):].partition("/")
            try:
                day = date.fromisoformat(folder)
            except ValueError:
                continue  # not one of the export's folders
            if until and day > until:
                return urls
            if name.endswith(".parquet") and "/" not in name:
                urls.append(f"s3://{bucket}/{key}")
    return urls


def create_views(connection: Any, files: dict[str, list[str]]) -> None:
    """One view per table that has files, the date= folder as a DATE column, files of differing columns read together."""
    for table, urls in files.items():
        if urls:
            listed = "[" + ", ".join(_literal(url) for url in urls) + "]"
            connection.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({listed}, hive_partitioning = true, "
                               "hive_types = {'date': DATE}, union_by_name = true)")


def _dates(since: date | None, until: date | None) -> str:
    return f" for the dates {since or '…'} to {until or '…'}" if since or until else " yet"


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")  # the table is for reading; --format csv/json keep every digit
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def write_table(columns: list[str], rows: list[tuple[Any, ...]], out: TextIO) -> None:
    """Columns aligned, numbers to the right, NULL for a missing value, and the row count."""
    cells = [[_text(value) for value in row] for row in rows]
    numeric = [bool(rows) and all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in rows)
               for i in range(len(columns))]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(columns)]

    def line(values: list[str]) -> str:
        aligned = (v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True))
        return "  ".join(aligned).rstrip()

    print(line(columns), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in cells:
        print(line(row), file=out)
    print(f"({len(rows)} row{'' if len(rows) == 1 else 's'})", file=out)


def write_result(columns: list[str], rows: list[tuple[Any, ...]], output: str, out: TextIO) -> None:
    if output == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
    elif output == "json":
        json.dump([dict(zip(columns, row, strict=True)) for row in rows], out, default=_json_value, indent=1)
        out.write("\n")
    else:
        write_table(columns, rows, out)


def query(settings: AnalyticsQuerySettings, sql: str, since: date | None, until: date | None, output: str,
          out: TextIO | None = None) -> int:
    """Run `sql` over the views and print its result to `out` (stdout); 0, FAILED, or BAD_SQL, the reason on stderr."""
    import duckdb

    bucket = settings.s3_bucket
    client = s3_client(settings.s3_endpoint, secret(settings.s3_access_key) or None, secret(settings.s3_secret_key) or None,
                       region=settings.s3_region or None, ca_file=settings.s3_ca_file or None)
    try:
        files = {table: table_files(client, bucket, table, since, until) for table in TABLES}
        connection = connect(settings)
        create_views(connection, files)
    except (BotoCoreError, ClientError, duckdb.Error, RuntimeError) as error:
        print(f"ccas analytics: cannot read s3://{bucket}/{ANALYTICS_PREFIX}: {error}", file=sys.stderr)
        return FAILED
    try:
        cursor = connection.execute(sql)
    except duckdb.CatalogException as error:
        missing = [table for table, urls in files.items() if not urls and table in str(error)]
        if missing:
            print(f"ccas analytics: no Parquet files under {', '.join(table_location(bucket, t) for t in missing)}"
                  f"{_dates(since, until)} — the pipeline writes a window's file once the watermark passes its end "
                  "(docs/analytics.md)", file=sys.stderr)
            return FAILED
        print(f"ccas analytics: bad SQL: {error}", file=sys.stderr)
        return BAD_SQL
    except (duckdb.ParserException, duckdb.BinderException) as error:
        print(f"ccas analytics: bad SQL: {error}", file=sys.stderr)
        return BAD_SQL
    except duckdb.Error as error:
        print(f"ccas analytics: the query failed: {error}", file=sys.stderr)
        return FAILED
    if cursor.description is None:  # a statement without a result (SET, CREATE …)
        return 0
    write_result([column[0] for column in cursor.description], cursor.fetchall(), output, out or sys.stdout)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas analytics", description="SQL over the Parquet files the pipeline exports")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("query", help="run one SQL statement over the views " + ", ".join(TABLES) + "; keys: "
                                       "CCAS_S3_ACCESS_KEY, CCAS_S3_SECRET_KEY, or the AWS credential chain")
    run.add_argument("sql", help='e.g. "select agent_id, avg(score) from scoring_results group by agent_id"')
    run.add_argument("--since", type=date.fromisoformat, help="first date= partition to read (YYYY-MM-DD, UTC)")
    run.add_argument("--until", type=date.fromisoformat, help="last date= partition to read (YYYY-MM-DD, UTC), inclusive")
    run.add_argument("--format", dest="output", choices=["table", "csv", "json"], default="table",
                     help="table (aligned, for reading), csv or json (every digit)")
    add_flags(run, AnalyticsQuerySettings, skip=SECRET_FIELDS)
    args = parser.parse_args(argv)
    settings = load_for_command(AnalyticsQuerySettings, args, "ccas analytics")
    if args.since and args.until and args.since > args.until:
        parser.error(f"--since {args.since} is after --until {args.until}")
    return query(settings, args.sql, args.since, args.until, args.output)
