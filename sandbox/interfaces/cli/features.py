"""``twh feature publish|list|show``: the feature library (特征库).

Stewards publish definitions from YAML (one mapping, or a list of them); anyone signed in lists
and reads them, with their lineage (datasets → columns → versions, and who uses them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ...errors import InvalidInput
from ...i18n import N_, _
from .output import ctx, emit, row, run, say, show, table

feature_app = typer.Typer(
    rich_markup_mode=None, help=N_("The feature library: publish, list and show feature definitions."),
                          no_args_is_help=True)


def read_yaml(path: Path) -> Any:
    import yaml

    if not path.is_file():
        raise InvalidInput(_("{path} does not exist or is not a file").format(path=path), details={"field": "file"})
    try:
        return yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise InvalidInput(_("{path}: not valid YAML ({why})").format(path=path, why=str(exc)[:200]),
                           details={"field": "file"}) from None


@feature_app.command("publish", help=N_("Publish the definition(s) in FILE (YAML: name, kind, sql, description, "
                                        "labels) as new versions."))
def feature_publish(c: typer.Context, file: Path) -> None:
    def go() -> list[dict[str, Any]]:
        data = read_yaml(file)
        items = data if isinstance(data, list) else [data]
        return [ctx(c).client().publish_feature(d) for d in items]

    emit(c, run(go), lambda d: [say(_("published {ref} ({kind}) over {datasets}, sha256 {sha}…").format(
        ref=f["ref"], kind=f["kind"], datasets=", ".join(f["datasets"]), sha=f["sha256"][:16])) for f in d])


@feature_app.command("list", help=N_("Every published feature (all versions)."))
def feature_list(c: typer.Context) -> None:
    def render(rows: list[dict[str, Any]]) -> None:
        whole = (_("feature"), _("kind"))
        t = table(*whole, _("datasets"), _("labels"), _("description"), whole=whole)
        for f in rows:
            row(t, f["ref"], f["kind"], ", ".join(f["datasets"]), ", ".join(f["labels"]), f["description"])
        show(t)
        if not rows:
            say(_("no features are published yet"))
    emit(c, run(lambda: ctx(c).client().list_features()), render)


@feature_app.command("show", help=N_("A feature (NAME for the latest, NAME@VERSION) with its SQL and lineage."))
def feature_show(c: typer.Context, ref: str) -> None:
    def render(f: dict[str, Any]) -> None:
        say(_("{ref} ({kind}, keyed by {unit}) published by {who}").format(
            ref=f["ref"], kind=f["kind"], unit=f["privacy_unit"], who=f["published_by"]))
        if f.get("description"):
            say(f"  {f['description']}")
        say(f"  sha256 {f['sha256']}")
        say(_("  sql: {sql}").format(sql=" ".join(f["sql"].split())))
        for ln in f.get("lineage", []):
            say(_("  reads {dataset} ({columns}): version {then} at publication, {now} now").format(
                dataset=ln["dataset"], columns=", ".join(ln["columns"]), then=ln["version_at_publish"],
                now=ln["current_version"]))
        if f.get("models"):
            say(_("  catalog models: {refs}").format(refs=", ".join(f["models"])))
        if f.get("training_jobs"):
            say(_("  training jobs: {ids}").format(ids=", ".join(f["training_jobs"])))
    emit(c, run(lambda: ctx(c).client().show_feature(ref)), render)
