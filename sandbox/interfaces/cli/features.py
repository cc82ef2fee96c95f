"""``twh feature publish|list|show``: the feature library (特征库).

Stewards publish definitions from YAML (one mapping, or a list of them); anyone signed in lists
and reads them, with their lineage (datasets → columns → versions, and who uses them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ...errors import InvalidInput
from .output import ctx, emit, out, row, run, say, table

feature_app = typer.Typer(help="The feature library: publish, list and show feature definitions.",
                          no_args_is_help=True)


def read_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise InvalidInput(f"{path} does not exist or is not a file", details={"field": "file"})
    try:
        return yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML ({str(exc)[:200]})", details={"field": "file"}) from None


@feature_app.command("publish")
def feature_publish(c: typer.Context, file: Path) -> None:
    """Publish the definition(s) in FILE (YAML: name, kind, sql, description, labels) as new versions."""
    def go() -> list[dict[str, Any]]:
        data = read_yaml(file)
        items = data if isinstance(data, list) else [data]
        return [ctx(c).client().publish_feature(d) for d in items]

    emit(c, run(go), lambda d: [say(f"published {f['ref']} ({f['kind']}) over {', '.join(f['datasets'])}, "
                                    f"sha256 {f['sha256'][:16]}…") for f in d])


@feature_app.command("list")
def feature_list(c: typer.Context) -> None:
    """Every published feature (all versions)."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = table("feature", "kind", "datasets", "labels", "description", whole=("feature", "kind"))
        for f in rows:
            row(t, f["ref"], f["kind"], ", ".join(f["datasets"]), ", ".join(f["labels"]), f["description"])
        out.print(t)
        if not rows:
            say("no features are published yet")
    emit(c, run(lambda: ctx(c).client().list_features()), render)


@feature_app.command("show")
def feature_show(c: typer.Context, ref: str) -> None:
    """A feature (NAME for the latest, NAME@VERSION) with its SQL and lineage."""
    def render(f: dict[str, Any]) -> None:
        say(f"{f['ref']} ({f['kind']}, keyed by {f['privacy_unit']}) published by {f['published_by']}")
        if f.get("description"):
            say(f"  {f['description']}")
        say(f"  sha256 {f['sha256']}")
        say("  sql: " + " ".join(f["sql"].split()))
        for ln in f.get("lineage", []):
            say(f"  reads {ln['dataset']} ({', '.join(ln['columns'])}): version {ln['version_at_publish']} at "
                f"publication, {ln['current_version']} now")
        if f.get("models"):
            say(f"  catalog models: {', '.join(f['models'])}")
        if f.get("training_jobs"):
            say(f"  training jobs: {', '.join(f['training_jobs'])}")
    emit(c, run(lambda: ctx(c).client().show_feature(ref)), render)
