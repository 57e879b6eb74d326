"""The ``leadscore`` command: one verb per workflow step, each a thin layer over a function."""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Optional

# LightGBM's OpenMP threads spin while they wait; on a busy 2-core machine that made training
# 10-100x slower (measured). Passive waiting costs nothing measurable when the machine is idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer  # noqa: E402
from rich.console import Console
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from leadscore.runs import RunPaths  # noqa: E402

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Predictive lead scoring: CRM export → features → LightGBM in MLflow → scores with reasons.",
)
console = Console(stderr=True)
out = Console()

DEFAULT_DATASET = Path("artifacts/dataset")
DEFAULT_MODEL = Path("artifacts/model")
DEFAULT_CARD = Path("artifacts/model_card.md")
DEFAULT_PLOTS = Path("plots")
DEFAULT_METRICS = Path("metrics/evaluate.json")
FLAT_DIR = Path("artifacts/flat")  # `retrain --spec` results, one folder per spec (no DVC stage writes there)


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _date_option(text: str, option: str):
    """A date typed on the command line, as naive UTC: ISO 8601, or dd.mm.yyyy with
    LEADSCORE_DATE_FORMAT=de; anything else exits 2 naming the option (never a guess)."""
    from leadscore.config.dates import DateError, parse_datetime
    from leadscore.config.settings import get_settings

    try:
        return parse_datetime(text, get_settings().date_format, option)
    except DateError as exc:
        _fail(str(exc), 2)


def _print_left_out(export, as_of) -> None:
    """Say which leads `score` leaves out at ``as_of`` and why: nothing is dropped silently."""
    leads, opps = export.leads, export.opportunities
    later = int((leads["created_at"] > as_of).sum())
    with_sales = leads["lead_id"].isin(opps.loc[opps["created_at"] < as_of, "lead_id"])
    handed = int(((leads["created_at"] <= as_of) & with_sales).sum())
    if later:
        console.print(f"[yellow]{later:,} lead(s) created after --as-of {as_of.isoformat()} left out: "
                      "a lead is not scored before it existed[/]", highlight=False)
    if handed:
        console.print(f"{handed:,} lead(s) with an opportunity before --as-of left out: already with sales",
                      highlight=False)


def _known_errors():
    from leadscore.config.params import ParamsError
    from leadscore.features.contract import ContractError
    from leadscore.models.lgbm import ModelLoadError
    from leadscore.models.rules import RulesError
    from leadscore.training.audit import LeakageError
    from leadscore.training.promote import PromotionError
    from leadscore.training.register import TooLittleDataError

    return (ContractError, ParamsError, RulesError, ModelLoadError, LeakageError, TooLittleDataError, PromotionError,
            ValueError, FileNotFoundError)


def _params(path: Path | None):
    from leadscore.config.params import load_params
    from leadscore.config.settings import get_settings
    from leadscore.features.catalog import use_glossary

    env_path = get_settings().params_path
    params = load_params(path or env_path, chosen_by="--params" if path else "LEADSCORE_PARAMS_PATH" if env_path else None)
    use_glossary(params)  # the texts speak the team glossary of the file this command reads
    console.print(f"[dim]{escape(params.source.sentence())}[/]", highlight=False, soft_wrap=True)
    return params


class _Guard:
    """Turn the errors a user can act on into one clear message and exit code 1, never a traceback."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is not None and isinstance(exc, _known_errors()):
            _fail(str(exc))
        return False


EXPORT_HELP = "CRM export: a folder of CSV/Parquet tables, or a database URL (sqlite:///crm.db, postgresql://…)."
ParamsOpt = typer.Option(None, "--params", help="Pipeline parameters (YAML); default: LEADSCORE_PARAMS_PATH, else ./params.yaml, else the packaged defaults.")
DatasetOpt = typer.Option(DEFAULT_DATASET, "--dataset", help="Training set from `leadscore features`.")
ModelDirOpt = typer.Option(DEFAULT_MODEL, "--model-dir", help="Model folder from `leadscore train`.")
AllowLeakyOpt = typer.Option(False, "--allow-leaky", help="Train even if the leakage audit finds suspicious features.")
MetricsOpt = typer.Option(DEFAULT_METRICS, "--metrics", help="Evaluation metrics (JSON).")
PlotsOpt = typer.Option(DEFAULT_PLOTS, "--plots", help="Folder for the evaluation plots (CSV for DVC + PNG).")


def _checked_model(model_dir: Path | None):
    """The model of ``--model-dir`` (else the registry champion) after its check in a child process
    (``serving.model_check``): a malformed file is a clear error, never a crash or a hang of this one."""
    from leadscore.models.lgbm import LeadModel
    from leadscore.models.registry import ModelRefused, load_champion
    from leadscore.serving.model_check import refusal

    if not model_dir:
        return load_champion(check=refusal)
    why = refusal(model_dir)
    if why:
        raise ModelRefused(f"{model_dir}: the model is refused by its check: {why}")
    return LeadModel.load(model_dir)


def _read(data: str):
    """Read and check an export, printing rows kept and dropped per table (nothing silently lost)."""
    from leadscore.features.contract import read_export

    export = read_export(data)
    parts = [
        f"{name} {len(frame):,} kept, {export.dropped[name]:,} dropped"
        for name, frame in export.tables.items()
    ]
    console.print(f"[dim]{data}:[/] " + "; ".join(parts), highlight=False)
    for name, dialect in export.dialects.items():  # only files not in the contract's own spelling
        console.print(f"[dim]  {name}: read as {dialect}[/]", highlight=False)
    if export.problems:
        console.print(f"[yellow]{len(export.problems):,} problem(s) in the export; `leadscore validate {data}` lists them[/]")
    return export


class _Steps:
    """A progress bar over a command's steps, with the elapsed time of the running one."""

    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True)
        self.task = self.progress.add_task("", total=total)

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()
        return False

    def note(self, description: str) -> None:
        """Change the running step's text (e.g. 'trial 3 of 20')."""
        self.progress.update(self.task, description=description)

    def step(self, description: str):
        import contextlib

        @contextlib.contextmanager
        def running():
            self.progress.update(self.task, description=description)
            yield
            self.progress.advance(self.task)

        return running()


def _print_registered(reg: dict) -> None:
    console.print(
        f"[green]✓[/] registered {reg['model_name']} version {reg['version']} as @{reg['alias']} ({reg['tracking_uri']})",
        highlight=False,
    )
    if reg.get("card"):
        console.print(f"  model card: {reg['card']}", highlight=False, soft_wrap=True)


def _print_promotion(result: dict) -> None:
    head = (f"[green]✓ promoted[/] version {result['challenger']} to @champion"
            if result["promoted"] else
            f"[yellow]kept[/] version {result['champion_before']} as @champion" if result["champion_before"] else
            "[yellow]not promoted[/]: no @champion, the SLA rules keep serving")
    if result.get("dry_run") and result.get("passed_gate"):
        head = f"[green]would promote[/] version {result['challenger']} (dry run)"
    console.print(f"{head} — challenger {result['challenger']}, champion before: {result['champion_before'] or 'none'}",
                  highlight=False)
    for reason in result["reasons"]:
        console.print(f"  • {escape(reason)}", highlight=False, soft_wrap=True)


@app.command("demo-data")
def demo_data(
    out_dir: Path = typer.Argument(..., help="Folder to write leads, activities and opportunities into."),
    leads: int = typer.Option(5000, "--leads", min=10, help="Number of leads."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed, same export)."),
    fmt: str = typer.Option("csv", "--format", help="csv or parquet."),
    end: Optional[str] = typer.Option(None, "--end", help="The export's data end: a date (ISO 8601, or dd.mm.yyyy "
                                      "with LEADSCORE_DATE_FORMAT=de) or 'today' (now, to the minute); default: "
                                      "the demo's fixed end, so a seed gives the same export on any day."),
    start: Optional[str] = typer.Option(None, "--start", help="First day leads are created (default: two years "
                                        "before --end; at least 60 days before it)."),
) -> None:
    """Write a realistic demo CRM export (fit, intent, negative persona, the sales-activity leak trap)."""
    import pandas as pd

    from leadscore.demo import DEFAULT_END, write_demo_export

    if fmt not in ("csv", "parquet"):
        _fail(f"--format: expected csv or parquet, found {fmt!r}", 2)
    if end is None:
        stop = pd.Timestamp(DEFAULT_END)
    elif end.strip().lower() == "today":
        stop = pd.Timestamp.now(tz="UTC").tz_localize(None).floor("min")
    else:
        stop = pd.Timestamp(_date_option(end, "--end"))
    first = pd.Timestamp(_date_option(start, "--start")) if start else None
    with console.status(f"writing {leads:,} demo leads to {out_dir}"):
        try:
            counts = write_demo_export(out_dir, n_leads=leads, seed=seed, fmt=fmt, end=stop, start=first)
        except ValueError as exc:
            _fail(f"--{exc}", 2)
    console.print(f"[green]wrote[/] {out_dir}: " + ", ".join(f"{n:,} {t}" for t, n in counts.items())
                  + f"; data end {stop:%Y-%m-%d %H:%M}")


@app.command()
def validate(
    data: str = typer.Argument(..., help=EXPORT_HELP),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on any problem, not only fatal ones."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write counts and problems as JSON."),
    show: int = typer.Option(50, "--show", help="Problems to print (all are in --report)."),
) -> None:
    """Check an export against the contract; every problem names file, row, column, expected, found."""
    from leadscore.features.contract import ContractError, read_export

    try:
        export = read_export(data)
    except ContractError as exc:
        for p in exc.problems:
            console.print(f"[red]✗[/] {escape(str(p))}", highlight=False, soft_wrap=True)
        if report:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps({"fatal": [str(p) for p in exc.problems]}, indent=1))
        raise typer.Exit(1)
    table = Table(title=f"{data}", show_edge=False)
    for col in ("table", "usable rows", "dropped rows"):
        table.add_column(col, justify="right" if col != "table" else "left")
    for name, frame in export.tables.items():
        table.add_row(name, f"{len(frame):,}", f"{export.dropped[name]:,}")
    out.print(table)
    for p in export.problems[:show]:
        console.print(f"[yellow]![/] {escape(str(p))}", highlight=False, soft_wrap=True)
    if len(export.problems) > show:
        console.print(f"… and {len(export.problems) - show:,} more problems (see --report)")
    if report:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps({
            "rows": {"leads": len(export.leads), "activities": len(export.activities), "opportunities": len(export.opportunities)},
            "dropped_rows": export.dropped,
            "problems": len(export.problems),
            "problem_list": [str(p) for p in export.problems],
        }, indent=1))
    if export.problems:
        console.print(f"{len(export.problems):,} problem(s); {sum(export.dropped.values()):,} row(s) unusable and left out")
        if strict:
            raise typer.Exit(1)
    else:
        console.print("[green]✓ export matches the contract[/]")


@app.command("import")
def import_(
    src: Path = typer.Argument(..., help="The folder with the CRM's exported files (CSV as offices save them, .xlsx or .parquet)."),
    dest: Path = typer.Argument(..., help="Where the export in leadscore's contract goes (leads.csv, … , import_report.json)."),
    preset: Optional[str] = typer.Option(None, "--from", help="The CRM: salesforce, hubspot, dynamics365 or pipedrive."),
    mapping_file: Optional[Path] = typer.Option(None, "--mapping", help="A mapping YAML for any other CRM; `extends: <preset>` overrides a preset."),
    show_preset: bool = typer.Option(False, "--show-preset", help="Print the preset's mapping (a start for --mapping) and exit."),
) -> None:
    """Turn a CRM's own export into leadscore's export: every source column with what it became
    (a contract column, a custom field kept as a feature candidate, or dropped and why), rows
    kept and dropped per table, values the value tables do not know, personal data found."""
    from leadscore.features.contract import ContractError
    from leadscore.features.importer import ImportError_, MappingError, import_export, load_mapping, preset_text

    try:
        if show_preset:
            if preset is None:
                _fail("--show-preset: expected --from PRESET, found none")
            out.print(preset_text(preset), markup=False, highlight=False)
            return
        mapping = load_mapping(preset, mapping_file)
        with _Steps(sum(len(s) for s in mapping.tables.values())) as bar:
            report = import_export(src, dest, mapping, progress=lambda what: (bar.note(what), bar.progress.advance(bar.task)))
    except (ImportError_, MappingError) as exc:
        _fail(str(exc))
    except ContractError as exc:
        _fail(f"{dest}: the mapped export fails the contract:\n" + "\n".join(str(p) for p in exc.problems))
    _print_import(report)


def _print_import(report) -> None:
    from leadscore.features.spec import is_sales_type

    fates = Table(title=f"{report.source} → {report.dest} ({report.mapping})", show_edge=False)
    for col in ("file", "column", "became", "why"):
        fates.add_column(col, overflow="fold")
    for fate in report.columns:
        style = "dim" if fate.became == "dropped" else None
        fates.add_row(escape(fate.file), escape(fate.column), escape(fate.became), escape(fate.why), style=style)
    out.print(fates)
    rows = Table(title="rows", show_edge=False)
    for col in ("table", "read", "kept", "dropped", "why"):
        rows.add_column(col, justify="left" if col in ("table", "why") else "right", overflow="fold")
    for table, entry in report.rows.items():
        why = "; ".join(f"{n:,} {escape(reason)}" for reason, n in entry["why"].items())
        rows.add_row(table, f"{entry['read']:,}", f"{entry['kept']:,}", f"{entry['dropped']:,}", why)
    out.print(rows)
    for key, values in report.unknown_values.items():
        listed = ", ".join(f"{escape(v)} → {escape(e['as'])} ({e['rows']:,})"
                           for v, e in sorted(values.items(), key=lambda kv: -kv[1]["rows"]))
        sales = any(is_sales_type(e["as"], ()) for e in values.values())
        console.print(f"[yellow]![/] {key}: values the value table does not know, kept as their own: {listed}"
                      + (" (sales_…: logged by sales, never a feature)" if sales else ""), highlight=False, soft_wrap=True)
    for hit in report.personal:  # column names only: the values are personal data
        console.print(f"[yellow]![/] {escape(hit['file'])} {escape(hit['column'])}: personal data "
                      f"({hit['kind']}, by {hit['by']}), never a feature", highlight=False, soft_wrap=True)
    for missing in report.missing_optional:
        console.print(f"[dim]  not in the export (optional): {escape(missing)}[/]", highlight=False)
    for name, dialect in report.dialects.items():
        console.print(f"[dim]  {escape(name)}: read as {dialect}[/]", highlight=False)
    if report.contract_problems:
        console.print(f"[yellow]{report.contract_problems:,} problem(s) in the mapped export; "
                      f"`leadscore validate {report.dest}` lists them[/]", highlight=False)
    console.print(f"[green]✓[/] → {report.dest}: {', '.join(Path(p).name for p in report.files.values())}",
                  highlight=False, soft_wrap=True)


@app.command()
def features(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP),
    out_dir: Path = typer.Option(DEFAULT_DATASET, "--out", help="Where the training set goes."),
    allow_leaky: bool = AllowLeakyOpt,
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Build the labelled point-in-time training set (snapshots, features, time split, leakage audit)."""
    from leadscore.training.dataset import build_dataset

    with _Guard():
        params = _params(params_path)
        export = _read(data)
        with _Steps(1) as bar, bar.step("building point-in-time snapshots, features and the leakage audit"):
            summary = build_dataset(export, params, out_dir, allow_leaky=allow_leaky)
    _print_notes(summary)
    console.print(
        f"[green]✓[/] {summary['snapshots']:,} snapshots of {summary['leads']:,} leads, "
        f"{summary['positives']:,} won; censored {summary['censored_horizon']:,} (horizon not over) "
        f"+ {summary['censored_open_deal']:,} (deal still open); splits {summary['rows_by_split']}",
        highlight=False,
    )


def _flat_drop_how(spec: Path) -> str:
    """Where a flat export leaves a column out: the spec's own drop list (LeakageError's last line)."""
    return f"add them to the `drop:` list of {spec}, each with a `why`"


def _print_notes(summary: dict) -> None:
    """What the training set chose from the data (label horizon, where deal tracking starts), one line each."""
    for note in summary.get("notes", []):
        console.print(f"  • {escape(note)}", highlight=False, soft_wrap=True)


@app.command()
def audit(
    spec: Path = typer.Option(..., "--spec", help="Dataset spec (YAML) of a flat one-row-per-lead export."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where the spec's files live (default ../shared/data)."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Leakage audit of a flat export's features: exit 1 naming every suspicious column."""
    from leadscore.features.flat import load_flat
    from leadscore.training.audit import audit_features

    with _Guard():
        flat = load_flat(spec, data_root)
        result = audit_features(flat.features, flat.label, drop_how=_flat_drop_how(spec),
                                **_params(params_path).audit.model_dump())
    console.print(
        f"{flat.name}: {len(flat.label):,} rows ({flat.rows_dropped.count:,} dropped), positive rate "
        f"{flat.positive_rate:.2%}, {result.checked} features checked, {len(flat.dropped)} columns dropped by the spec",
        highlight=False,
    )
    table = Table(show_edge=False)
    table.add_column("feature")
    table.add_column("group")
    table.add_column("AUC alone", justify="right")
    for name, auc in sorted(result.single_feature_auc.items(), key=lambda kv: -kv[1]):
        table.add_row(name, flat.groups.get(name, ""), f"{auc:.3f}")
    out.print(table)
    for finding in result.findings:
        console.print(f"[red]✗[/] {escape(str(finding))}", highlight=False, soft_wrap=True)
    if not result.passed:
        raise typer.Exit(1)
    console.print("[green]✓ no feature looks leaky[/]")


def _stepper(bar: "_Steps"):
    """A progress callback: each message starts the next step of the bar."""
    started = [False]

    def hear(message: str) -> None:
        if started[0]:
            bar.progress.advance(bar.task)
        started[0] = True
        bar.note(message)

    return hear


TuneOpt = typer.Option(None, "--tune", min=0, help="Optuna trials before training (default: train.tune_trials in params.yaml).")
RunDirOpt = typer.Option(None, "--run-dir", help="With --data: the folder for this run's training set, model, metrics, "
                         "plots and model card (default runs/<UTC time>-<export name>/; never the DVC pipeline's outputs).")


@app.command()
def train(
    data: Optional[str] = typer.Option(None, "--data", help=EXPORT_HELP + " The whole chain, as `leadscore retrain`."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="A training set from `leadscore features` instead."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Where the model folder goes (default: with "
                                             f"--dataset {DEFAULT_MODEL}, with --data the run folder's model/)."),
    run_dir: Optional[Path] = RunDirOpt,
    do_evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Backtest against the baselines."),
    do_register: bool = typer.Option(True, "--register/--no-register", help="Log to MLflow, register as @challenger."),
    do_promote: bool = typer.Option(True, "--promote/--no-promote", help="Run the promotion gate after registering."),
    allow_leaky: bool = AllowLeakyOpt,
    tune_trials: Optional[int] = TuneOpt,
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Train LightGBM; with --data the whole chain: features → train → evaluate → register → promote."""
    if (data is None) == (dataset is None):
        _fail("give exactly one of --data (an export) or --dataset (a built training set)", 2)
    if data is None and (do_evaluate or do_register):
        _fail("--evaluate and --register need the export: use --data, or add --no-evaluate --no-register", 2)
    if data is None and run_dir is not None:
        _fail("--run-dir goes with --data (the whole chain); with --dataset give --model-dir", 2)
    if data is None:  # one step, as the DVC stage `train` runs it
        paths = RunPaths(dataset=dataset, model=model_dir or DEFAULT_MODEL, metrics=DEFAULT_METRICS, plots=DEFAULT_PLOTS,
                         card=DEFAULT_CARD)
    else:
        paths = _chain_paths(data, None, model_dir, run_dir)
    _chain(data, paths, do_evaluate, do_evaluate and do_register,
           do_evaluate and do_register and do_promote, allow_leaky, tune_trials, params_path, build=data is not None)


@app.command()
def retrain(
    data: Optional[str] = typer.Option(None, "--data", help=EXPORT_HELP),
    spec: Optional[Path] = typer.Option(None, "--spec", help="A flat one-row-per-lead export's spec (YAML) instead."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Where a --spec's files live (default ../shared/data)."),
    since: Optional[str] = typer.Option(None, "--since", help="--spec only: leave out rows before this date (e.g. before "
                                        "the first recorded win)."),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Where the training set goes (default: the run "
                                           "folder's dataset/)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="Where the model folder goes (default: the run "
                                             "folder's model/)."),
    run_dir: Optional[Path] = RunDirOpt,
    do_promote: bool = typer.Option(True, "--promote/--no-promote", help="Run the promotion gate after registering."),
    allow_leaky: bool = AllowLeakyOpt,
    tune_trials: Optional[int] = TuneOpt,
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """The quarterly retrain in one command: validate → features → train → backtest → register → promote."""
    if (data is None) == (spec is None):
        _fail("give exactly one of --data (a CRM export) or --spec (a flat export's spec)", 2)
    if spec is not None and (dataset or model_dir or run_dir):
        _fail(f"--dataset, --model-dir and --run-dir go with --data; a --spec run writes {FLAT_DIR}/<spec name>/", 2)
    if spec is not None:
        # A row position (for a spec ordered by row) stays a number; anything else is a date.
        if since is not None and not since.strip().isdigit():
            since = _date_option(since, "--since").isoformat()
        _retrain_flat(spec, data_root, params_path, since)
        return
    _chain(data, _chain_paths(data, dataset, model_dir, run_dir), True, True, do_promote, allow_leaky, tune_trials,
           params_path, build=True)


def _chain_paths(data: str, dataset: Optional[Path], model_dir: Optional[Path], run_dir: Optional[Path]) -> RunPaths:
    """Where a chain from an export writes: a run folder of its own, never over what dvc.yaml tracks
    (the next `dvc repro` would retrain the demo over it), unless DVC itself runs the command."""
    from leadscore.runs import find_dvc_root, inside_dvc_stage, new_run_folder, refusal, run_paths, tracked_collisions

    paths = run_paths(run_dir or new_run_folder(data), dataset, model_dir)
    root = find_dvc_root()
    hits = tracked_collisions(paths.written(), root) if root and not inside_dvc_stage() else []
    if hits:
        _fail(refusal(hits, root), 2)
    return paths


def _chain(data, paths: RunPaths, do_evaluate: bool, do_register: bool, do_promote: bool,
           allow_leaky: bool, tune_trials, params_path: Path, *, build: bool) -> None:
    from leadscore.training.dataset import build_dataset
    from leadscore.training.evaluate import evaluate as run_evaluate
    from leadscore.training.promote import promote
    from leadscore.training.register import register_model
    from leadscore.training.train import train_model

    dataset, model_dir = paths.dataset, paths.model
    with _Guard():
        params = _params(params_path)
        export = _read(data) if data is not None else None
        if tune_trials is not None:
            params.train.tune_trials = tune_trials
        steps = [build, True] + [do_evaluate] * (2 * params.backtest.folds + 3) + [do_register, do_promote]
        metrics = reg = decision = None
        with _Steps(sum(steps)) as bar:
            if build:
                with bar.step("building point-in-time features (leakage audit included)"):
                    _print_notes(build_dataset(export, params, dataset, allow_leaky=allow_leaky))
            label = "training LightGBM (early stopping, calibration, thresholds, refit)"
            with bar.step(label):
                model = train_model(dataset, params, model_dir,
                                    progress=lambda done, total: bar.note(f"{label}: Optuna trial {done} of {total}"))
            if do_evaluate:
                hear = _stepper(bar)
                metrics = run_evaluate(dataset, model_dir, export, params, metrics_file=paths.metrics,
                                       plots_dir=paths.plots, progress=hear)
                bar.progress.advance(bar.task)
            if do_register:
                with bar.step("registering in MLflow as @challenger"):
                    reg = register_model(model_dir, dataset, metrics, params, card_file=paths.card, plots_dir=paths.plots)
            if do_promote:
                with bar.step("promotion gate: challenger against champion on the test period"):
                    decision = promote(dataset, params, export)
        console.print(f"[green]✓[/] trained {model.info['trees']} trees on {model.info['train_rows']:,} snapshots → {model_dir}; "
                      f"sales-ready from p ≥ {model.sales_ready:.3f} ({model.info['thresholds']['chosen_by']})",
                      highlight=False)
        if "tuning" in model.info:
            t = model.info["tuning"]
            console.print(f"  Optuna: {t['trials_run']} trials, best validation log loss {t['best_valid_log_loss']:.4f} "
                          f"with {t['best_params']}", highlight=False, soft_wrap=True)
        if metrics:
            _print_metrics(metrics)
        if reg:
            _print_registered(reg)
        if decision:
            _print_promotion(decision)
    if build:
        _print_run_folder(paths, do_evaluate, do_register)


def _print_run_folder(paths: RunPaths, evaluated: bool, registered: bool) -> None:
    """Say where this run's products are (its run folder, kept apart from the DVC pipeline's)."""
    parts = [("training set", paths.dataset), ("model", paths.model)]
    parts += [("metrics", paths.metrics), ("plots", paths.plots)] if evaluated else []
    parts += [("model card", paths.card)] if registered else []
    folder = paths.folder
    shown = [f"{what} {where.relative_to(folder) if folder and where.is_relative_to(folder) else where}"
             for what, where in parts]
    console.print(f"  run folder {folder}/: " + ", ".join(shown), highlight=False, soft_wrap=True)


def _retrain_flat(spec: Path, data_root: Optional[Path], params_path: Path, since: Optional[str]) -> None:
    """A flat export: audit, time-ordered test and cross-validation of model, logistic regression
    and the spec's SLA rules, logged as an MLflow run. Nothing is registered: the service scores
    leads from their activity log, which a flat export does not have."""
    from leadscore.features.flat import load_flat, read_flat_spec
    from leadscore.training.audit import audit_features, raise_if_leaky
    from leadscore.training.flat_eval import evaluate_flat
    from leadscore.training.flat_log import log_flat_run
    from leadscore.training.gate import flat_gate

    with _Guard():
        params = _params(params_path)
        name = read_flat_spec(spec).name
        out_dir = FLAT_DIR / name
        with _Steps(3) as bar:
            with bar.step(f"{name}: reading the export and the leakage audit"):
                flat = load_flat(spec, data_root)
                audit = audit_features(flat.features, flat.label, drop_how=_flat_drop_how(spec),
                                       **params.audit.model_dump())
                raise_if_leaky(audit, False)
            label = f"{name}: time-ordered test and cross-validation"
            with bar.step(label):
                result = evaluate_flat(spec, params, data_root, out_dir, since=since,
                                       progress=lambda message: bar.note(f"{label}: {message}"))
                result["gate"] = flat_gate(result, params.registry)  # would it be allowed to serve?
            with bar.step("logging the run to MLflow"):
                run = log_flat_run(result, out_dir, params, audit.to_dict())
    degenerate = result.get("degenerate") or []
    console.print(f"{'[red]✗[/]' if degenerate else '[green]✓[/]'} {name}: {result['rows']:,} rows, "
                  f"{result['positives']:,} positive; audit passed ({audit.checked} features)", highlight=False)
    view = Table(title=f"{name}: ROC AUC (95 % interval)", show_edge=False)
    view.add_column("scorer")
    view.add_column("time-ordered test", justify="right")
    view.add_column(f"{result['cv']['folds']}-fold CV (mean ± sd)", justify="right")
    for scorer in result["scorers"]:
        t = ((result["time_ordered"].get("metrics") or {}).get("scorers") or {}).get(scorer)
        t_cell = f"{t['roc_auc']:.3f} ({t['interval']['roc_auc'][0]:.3f}–{t['interval']['roc_auc'][1]:.3f})" if t else "–"
        cv = result["cv"]["roc_auc"][scorer]
        view.add_row(scorer, t_cell, f"{cv['mean']:.3f} ± {cv['std']:.3f}")
    out.print(view)
    for where, part in (("time-ordered", result["time_ordered"]), ("CV", result["cv"])):
        for sentence in part.get("verdicts", []):
            console.print(f"  {where}: {escape(sentence)}", highlight=False, soft_wrap=True)
    for note in result["notes"]:
        console.print(f"  • {escape(note)}", highlight=False, soft_wrap=True)
    verdict = result["gate"]
    mark = "[green]✓ baseline gate passed[/]" if verdict["passed"] else "[yellow]✗ baseline gate failed[/]"
    console.print(f"{mark}: {escape(verdict['sentence'])}", highlight=False, soft_wrap=True)
    console.print(f"  results: {out_dir}/flat_eval.json, plots in {out_dir}/plots; MLflow run {run}", highlight=False)
    if degenerate:  # a test that says nothing is a failure with its reasons, never a tick
        _fail(f"{name}: the time-ordered test is degenerate: " + "; ".join(degenerate) + ".")


def _print_metrics(metrics: dict) -> None:
    from leadscore.training.evaluate import metric_rows

    table = Table(title=f"test period: {metrics['test_rows']:,} snapshots, {metrics['test_positives']:,} won "
                        "(95 % interval over leads)", show_edge=False)
    table.add_column("metric")
    names = [n for n in ("model", "rules", "logistic") if n in metrics]
    labels = {"model": "model", "rules": "rules (SLA)", "logistic": "logistic regression"}
    for name in names:
        table.add_column(labels[name], justify="right")
    for key, cells in metric_rows(metrics):
        table.add_row(key.replace("top_k", "top-k"), *[cells.get(n, "") for n in names])
    out.print(table)
    bt = metrics.get("backtest")
    if bt:
        folds = Table(title=f"rolling-origin backtest (top-k = {bt['capacity_per_week']} leads a week)", show_edge=False)
        for col in ("window from", "snapshots", "won", "model AUC", "rules AUC", "logistic AUC", "model top-k win rate"):
            folds.add_column(col, justify="right")
        for f in bt["folds"]:
            if "skipped" in f:
                folds.add_row(f["start"][:10], f"skipped: {f['skipped']}", "", "", "", "", "")
                continue
            sc = f["scorers"]
            folds.add_row(f["start"][:10], f"{f['rows']:,}", f"{f['positives']:,}", f"{sc['model']['roc_auc']:.3f}",
                          f"{sc['rules']['roc_auc']:.3f}", f"{sc['logistic']['roc_auc']:.3f}",
                          f"{sc['model']['top_k_win_rate']:.3f}")
        out.print(folds)
    for sentence in (metrics.get("verdicts") or {}).get("backtest", []):
        out.print(f"all windows: {sentence}", highlight=False)
    verdict = metrics.get("gate")
    if verdict:
        mark = "[green]✓ baseline gate passed[/]" if verdict["passed"] else "[yellow]✗ baseline gate failed[/]"
        console.print(f"{mark}: {escape(verdict['sentence'])}", highlight=False, soft_wrap=True)


@app.command("evaluate")
def evaluate_cmd(
    data: str = typer.Option(..., "--data", help="The CRM export the training set came from."),
    dataset: Path = DatasetOpt,
    model_dir: Path = ModelDirOpt,
    metrics_file: Path = MetricsOpt,
    plots_dir: Path = PlotsOpt,
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Model, SLA rules and logistic regression on the same later rows: test period and rolling backtest."""
    from leadscore.training.evaluate import evaluate as run_evaluate

    with _Guard():
        params = _params(params_path)
        export = _read(data)
        with _Steps(params.backtest.folds + 3) as bar:
            metrics = run_evaluate(dataset, model_dir, export, params, metrics_file=metrics_file, plots_dir=plots_dir,
                                   progress=_stepper(bar))
    _print_metrics(metrics)
    console.print(f"  metrics: {metrics_file}; plots: {plots_dir}/", highlight=False)


@app.command()
def register(
    dataset: Path = DatasetOpt,
    model_dir: Path = ModelDirOpt,
    metrics_file: Path = MetricsOpt,
    out_file: Optional[Path] = typer.Option(Path("artifacts/registered.json"), "--out"),
    card_file: Path = typer.Option(DEFAULT_CARD, "--card", help="Where to write the model card (Markdown)."),
    plots_dir: Path = PlotsOpt,
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Log the run to MLflow and register a new version of `lead-scoring` as @challenger."""
    from leadscore.training.register import register_model

    with _Guard():
        metrics = json.loads(metrics_file.read_text())
        reg = register_model(model_dir, dataset, metrics, _params(params_path), card_file=card_file, plots_dir=plots_dir)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(reg, indent=1))
    _print_registered(reg)


@app.command("promote")
def promote_cmd(
    dataset: Path = DatasetOpt,
    data: Optional[str] = typer.Option(None, "--data", help="The export, if the champion needs features the training set lacks."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what the gate decides without moving the alias."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the decision as JSON."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Move @champion to @challenger if it is not worse on the same test rows (margins in params.yaml)."""
    from leadscore.training.promote import promote

    with _Guard():
        decision = promote(dataset, _params(params_path), _read(data) if data else None, dry_run=dry_run)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(json.dumps(decision, indent=1))
    _print_promotion(decision)


@app.command()
def rollback(params_path: Optional[Path] = ParamsOpt) -> None:
    """Point @champion back at the version that held it before; serving picks it up on /reload or restart."""
    from leadscore.training.promote import rollback as run_rollback

    with _Guard():
        result = run_rollback(_params(params_path))
    console.print(f"[green]✓[/] @champion: version {result['champion_before']} → {result['champion_after']}", highlight=False)


@app.command()
def thresholds(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP),
    weeks: int = typer.Option(8, "--weeks", min=1, max=104, help="Recent weeks to score (one snapshot of every open lead a week)."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="A model folder instead of the registry champion."),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write the table as CSV."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """For each probability cut-off: leads a week above it, expected win rate, expected wins, share of wins."""
    import pandas as pd

    from leadscore.features.build import compute_features
    from leadscore.features.snapshots import scoring_snapshots
    from leadscore.models.decision import at_or_above
    from leadscore.training.metrics import week_codes
    from leadscore.training.thresholds import threshold_table

    with _Guard():
        params = _params(params_path)
        export = _read(data)
        model = _checked_model(model_dir)
        ends = [export.data_end - pd.Timedelta(days=7 * k) for k in range(weeks)][::-1]
        snaps = pd.concat([scoring_snapshots(export, t) for t in ends], ignore_index=True)
        with _Steps(1) as bar, bar.step(f"scoring {len(snaps):,} weekly snapshots of open leads"):
            raw = compute_features(snaps, export.leads, export.activities, model.spec, engine=params.features.engine)
            p = model.predict_proba(raw)
        table = threshold_table(p, week_codes(snaps["as_of"]), capacity=params.thresholds.capacity_per_week,
                                extra=(model.sales_ready,))
    capacity = params.thresholds.capacity_per_week
    view = Table(title=f"model {model.version}, {weeks} weeks to {export.data_end.date()}: {len(snaps) / weeks:,.0f} open leads "
                       f"a week; capacity {capacity} a week", show_edge=False)
    for col in ("threshold", "leads / week", "expected win rate", "expected wins / week", "share of expected wins", ""):
        view.add_column(col, justify="right")
    fills = int((table["leads_per_week"] - capacity).abs().idxmin())
    for i, row in enumerate(table.itertuples()):
        mark = "◀ SQL threshold" if abs(row.threshold - model.sales_ready) < 5e-5 else "◀ capacity" if i == fills else ""
        view.add_row(f"{row.threshold:.4f}", f"{row.leads_per_week:,.1f}", f"{row.expected_win_rate:.1%}",
                     f"{row.expected_wins_per_week:.1f}", f"{row.expected_share_of_wins:.1%}", mark)
    out.print(view)
    at = float(at_or_above(p, model.sales_ready).sum()) / weeks
    console.print(f"The model's SQL threshold {model.sales_ready:.4f} ({model.info.get('thresholds', {}).get('chosen_by', 'stored')}) "
                  f"puts {at:.1f} leads a week over to sales on this data.", highlight=False)
    if out_file:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out_file, index=False)


@app.command()
def score(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP),
    as_of: str = typer.Option(..., "--as-of", help="ISO 8601 date or time (dd.mm.yyyy with LEADSCORE_DATE_FORMAT=de); "
                              "only data before it is used."),
    out_file: Path = typer.Option(..., "--out", help="CSV to write."),
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="A model folder instead of the registry champion."),
    top_k: int = typer.Option(3, "--top-k", min=0, max=20, help="Positive and negative reasons per lead."),
    language: str = typer.Option("en", "--language", help="Language of reasons and recommendations: en or de."),
    what_if: bool = typer.Option(False, "--what-if", help="For leads below the sales threshold: the levers that would raise the score (actions, BANT answers to confirm), each with the score and grade it reaches, and the fewest actions that would lift them over it."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Score every lead without an opportunity before --as-of, with the champion (or the rules)."""
    import pandas as pd

    from leadscore.features.snapshots import scoring_snapshots
    from leadscore.models.base import score_leads
    from leadscore.models.policy import primary_scorer
    from leadscore.serving.model_check import refusal

    ts = pd.Timestamp(_date_option(as_of, "--as-of"))
    if language not in ("en", "de"):
        _fail(f"--language: expected en or de, found {language!r}", 2)
    with _Guard():
        params = _params(params_path)
        export = _read(data)
        scorer, why = primary_scorer(params.features, model_dir=model_dir, check=refusal)
        if why:
            console.print(f"[yellow]rules answer:[/] {why}", highlight=False)
        snaps = scoring_snapshots(export, ts)
        _print_left_out(export, ts)
        with _Steps(1) as bar, bar.step(f"scoring {len(snaps):,} leads as of {ts.isoformat()}"):
            results = score_leads(scorer, snaps, export.leads, export.activities, top_k=top_k,
                                  engine=params.features.engine, lang=language, what_if=what_if)
    rows = [{
        "lead_id": r.lead_id,
        "as_of": ts.isoformat(),
        "probability": r.probability,
        "score": r.score,
        "grade": r.grade,
        "fit_grade": r.matrix.fit_grade if r.matrix else None,
        "interest_level": r.matrix.interest_level if r.matrix else None,
        "recommendation": r.recommendation,
        "recommendation_text": r.recommendation_text,
        "sales_ready": r.sales_ready,
        "scorer": r.scorer,
        "model_version": r.model_version,
        "fallback_reason": why,
        # ▲ raised the score, ▼ lowered it: a rep reads directions, not log-odds or points.
        "reasons": " | ".join(f"{'▲' if reason.effect > 0 else '▼'} {reason.text}" for reason in r.reasons),
        "what_if_levers": " | ".join(f"{lv.text} → {lv.score} ({lv.grade})" for lv in r.what_if.levers) if r.what_if else None,
        "what_if": r.what_if.text if r.what_if else None,
        "what_if_probability": r.what_if.probability if r.what_if else None,
    } for r in results]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["lead_id", "as_of", "probability", "score", "grade", "fit_grade", "interest_level",
                                "recommendation", "recommendation_text", "sales_ready", "scorer", "model_version", "fallback_reason", "reasons",
                                "what_if_levers", "what_if", "what_if_probability"]).to_csv(out_file, index=False)
    console.print(f"[green]✓[/] scored {len(rows):,} leads with {scorer.name} {scorer.version} → {out_file}")


@app.command()
def drift(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP + " The newer export to check."),
    dataset: Path = DatasetOpt,
    model_dir: Optional[Path] = typer.Option(None, "--model-dir", help="A model folder instead of the registry champion."),
    out_dir: Path = typer.Option(Path("reports/drift"), "--out", help="Where drift.csv, drift.png and drift.json go."),
    webhook: Optional[str] = typer.Option(None, "--webhook", help="POST the summary as JSON here when a feature or the score crosses psi_alert."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Population stability (PSI) of every feature and of the score: open leads of the last
    monitor.window_days vs the rows the champion learned from. Exit 2 when one crosses psi_alert."""
    import pandas as pd

    from leadscore.features.build import compute_features
    from leadscore.features.snapshots import scoring_snapshots
    from leadscore.training.dataset import load_dataset
    from leadscore.training.drift import drift_table, write_drift

    with _Guard():
        params = _params(params_path)
        mon = params.monitor
        export = _read(data)
        model = _checked_model(model_dir)
        table, _ = load_dataset(dataset)
        start, end = (pd.Timestamp(t) for t in model.info["train_period"])
        reference = table.loc[(table["as_of"] >= start) & (table["as_of"] <= end), model.spec.names]
        weeks = max(1, mon.window_days // 7)
        ends = [export.data_end - pd.Timedelta(days=7 * k) for k in range(weeks)][::-1]
        snaps = pd.concat([scoring_snapshots(export, t) for t in ends], ignore_index=True)
        # The model learned from leads up to max_snapshot_age_days old; older open leads are counted, not compared.
        created = snaps["lead_id"].map(export.leads.set_index("lead_id")["created_at"])
        in_range = (snaps["as_of"] - created) <= pd.Timedelta(days=params.features.max_snapshot_age_days)
        recent_snaps = snaps.loc[in_range].reset_index(drop=True)
        with _Steps(2) as bar:
            with bar.step(f"features of {len(recent_snaps):,} recent snapshots ({weeks} weeks)"):
                recent = compute_features(recent_snaps, export.leads, export.activities, model.spec,
                                          engine=params.features.engine)
            with bar.step(f"scoring both sides ({len(reference):,} training rows)"):
                result = drift_table(reference, recent[model.spec.names], model.spec,
                                     score_reference=model.predict_proba(reference),
                                     score_recent=model.predict_proba(recent), warn=mon.psi_warn,
                                     alert=mon.psi_alert, n_bins=mon.psi_bins)
        older_note = (f"{int((~in_range).sum()):,} of {len(snaps):,} open-lead snapshots were older than "
                      f"{params.features.max_snapshot_age_days} days, outside what the model learned from, and are "
                      "counted but not compared.")
        summary = write_drift(result, out_dir, notes=[older_note], meta={
            "model version": model.version, "export": data, "export ends": export.data_end.date(),
            "recent window (days)": mon.window_days, "reference": f"training rows {start.date()} – {end.date()}"})
        summary.update({"model_version": model.version, "window_days": mon.window_days, "data_end": str(export.data_end),
                        "recent_snapshots": int(len(recent_snaps)),
                        "older_than_training_range": int((~in_range).sum()),
                        "reference_rows": int(len(reference)), "psi_warn": mon.psi_warn, "psi_alert": mon.psi_alert})
        (out_dir / "drift.json").write_text(json.dumps(summary, indent=1))
    view = Table(title=f"drift: model {model.version}, last {mon.window_days} days of {data} vs its training rows",
                 show_edge=False)
    for col in ("feature", "group", "PSI", "status", "largest move"):
        view.add_column(col, justify="right" if col == "PSI" else "left")
    colour = {"major": "red", "shift": "yellow", "stable": "green"}
    for row in result.head(12).itertuples():
        view.add_row(row.feature, row.group, f"{row.psi:.3f}", f"[{colour[row.status]}]{row.status}[/]",
                     row.top_move.removeprefix(f"{row.feature} "))
    out.print(view)
    older = summary["older_than_training_range"]
    console.print(f"{len(summary['alerts'])} major, {len(summary['warnings'])} shifted of {summary['features']} features; "
                  f"score PSI {summary['score_psi']:.3f}. {older:,} of {len(snaps):,} open-lead snapshots were older than "
                  f"{params.features.max_snapshot_age_days} days (outside what the model learned from) and are not "
                  f"compared. → {out_dir}", highlight=False)
    crossed = summary["alerts"]
    if crossed and webhook:
        import httpx

        try:
            httpx.post(webhook, json={"event": "leadscore.drift", **summary}, timeout=10).raise_for_status()
            console.print(f"[yellow]alert sent[/] to the webhook ({len(crossed)} above {mon.psi_alert})")
        except httpx.HTTPError as exc:
            console.print(f"[red]✗[/] webhook failed: {type(exc).__name__}: {str(exc)[:200]}", highlight=False)
    if crossed:
        raise typer.Exit(2)


@app.command()
def attribution(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP),
    out_dir: Path = typer.Option(Path("reports/attribution"), "--out", help="Where the CSVs and the plot go."),
    half_life_days: float = typer.Option(7.0, "--half-life-days", min=0.01, help="Time-decay: a touch counts half as much this many days earlier."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Credit for won deals to channels and campaigns: first touch, last touch, linear, time-decay and
    position-based (U-shaped), per quarter of the close date."""
    from leadscore.training.attribution import attribute, attribution_table, write_attribution

    with _Guard():
        params = _params(params_path)
        export = _read(data)
        summary = write_attribution(export, params.features.sales_activity_types, out_dir, half_life_days=half_life_days)
        wide = attribution_table(attribute(export, params.features.sales_activity_types, half_life_days=half_life_days))
    if wide.empty:
        console.print("no won deals: nothing to attribute")
        return
    last = wide.loc[wide["quarter"] == wide["quarter"].max()]
    view = Table(title=f"channel credit for the {int(last[list(last.columns[2:])].sum().iloc[0]):,} won deals of "
                       f"{last['quarter'].iloc[0]}", show_edge=False)
    view.add_column("channel")
    for model_name in last.columns[2:]:
        view.add_column(model_name.replace("_", " "), justify="right")
    for row in last.itertuples(index=False):
        view.add_row(str(row[1]), *[f"{v:.2f}" for v in row[2:]])
    out.print(view)
    console.print(f"[green]✓[/] {summary['deals']:,} won deals, {summary['touches']:,} touches, {len(summary['quarters'])} quarters "
                  f"({summary['deals_without_touch']} without a touch, {summary['deals_without_amount']} without an amount) "
                  f"→ {out_dir}", highlight=False)


def _model_horizons(scores, settings) -> dict[str, int]:
    """Each serving model version's label horizon (its ``info["horizon_days"]``): its scores are
    labelled the way it was trained. A version that cannot be loaded falls back to params.yaml's."""
    from leadscore.models.registry import load_version

    horizons = {}
    if "scorer" not in scores.columns:
        return horizons
    for version in scores.loc[scores["scorer"] == "model", "model_version"].dropna().astype(str).unique():
        try:
            days = load_version(settings.model_name, version, settings).info.get("horizon_days")
        except Exception:  # any load failure (a deleted version or an offline registry): say so, use params.yaml's
            console.print(f"[yellow]model version {version}: not loadable, its scores are labelled with "
                          "features.horizon_days of params.yaml[/]", highlight=False)
            continue
        if days is not None:
            horizons[version] = int(days)
    return horizons


@app.command()
def monitor(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP + " A newer export, with the outcomes since the scores."),
    ledger_url: Optional[str] = typer.Option(None, "--ledger", help="Score ledger URL (default: LEADSCORE_LEDGER_URL, else ./ledger.db)."),
    scores_file: Optional[Path] = typer.Option(None, "--scores", help="Also check a batch scores CSV from `leadscore score --out`."),
    out_dir: Path = typer.Option(Path("reports/monitor"), "--out", help="Where monitor.csv, monitor_grades.csv, the plots, monitor.json and monitor.html go."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Are the served scores still right? Each score in the ledger (and --scores) joined with its
    outcome in a newer export: AUC, calibration and win rate per grade, per month and model version."""
    import pandas as pd

    from leadscore.config.settings import get_settings
    from leadscore.serving.ledger import LedgerError
    from leadscore.training.monitor import (ALL, API, horizon_text, label_scores, read_ledger, read_scores_file,
                                            write_monitor)

    settings = get_settings()
    url = ledger_url or settings.ledger()
    with _Guard():
        params = _params(params_path)
        export = _read(data)
        try:
            served = read_ledger(url)
        except LedgerError as exc:
            _fail(str(exc))
        parts = [served]
        if scores_file is not None:
            batch = read_scores_file(scores_file)
            if batch.attrs.get("dropped"):
                console.print(f"[yellow]{scores_file}: {batch.attrs['dropped']:,} row(s) without a readable as_of, "
                              f"probability or lead_id were left out (first on line {batch.attrs['first_dropped_line']})[/]",
                              highlight=False, soft_wrap=True)
            parts.append(batch)
        scores = pd.concat([p for p in parts if len(p)] or [served], ignore_index=True)
        secret = settings.pseudonym_secret()
        if secret is None and len(served):
            _fail("LEADSCORE_PSEUDONYM_KEY is not set (environment or .env): the ledger stores leads under a keyed "
                  "pseudonym, so the key the service ran with is needed to find them in the export")
        with _Steps(1) as bar, bar.step(f"labelling {len(scores):,} scores with the outcomes of {data}"):
            labelled = label_scores(scores, export, params.features, secret, horizons=_model_horizons(scores, settings))
        horizon = horizon_text(labelled)
        summary = write_monitor(labelled, out_dir, data_end=export.data_end, horizon_days=horizon,
                                meta={"export": data, "ledger": served.attrs["ledger"],
                                      "scores_file": str(scores_file) if scores_file else None},
                                lead_status=export.lead_status if "lead_status" in export.dropped else None)
    shown = pd.DataFrame(summary["months"])
    view = Table(title=f"scores vs outcomes to {export.data_end:%Y-%m-%d} ({horizon}-day horizon)",
                 show_edge=False)
    for col in ("", "month", "scores", "labelled", "won", "AUC", "mean p", "win rate", "ECE"):
        view.add_column(col, justify="left" if col in ("", "month") else "right", no_wrap=col in ("", "month"))

    def num(v, fmt: str) -> str:
        return "–" if v is None or pd.isna(v) else format(v, fmt)

    for row in shown.itertuples(index=False):
        who = f"{'served' if row.source == API else row.source} {row.scorer}"
        view.add_row(who, row.month, f"{row.scores:,}", f"{row.labelled:,}", f"{row.positives:,}",
                     num(row.roc_auc, ".3f"), num(row.mean_predicted, ".1%"), num(row.observed_rate, ".1%"),
                     num(row.ece, ".3f"), style="bold" if row.month == ALL else None)
    out.print(view)
    for sentence in summary["headline"]:
        console.print(sentence, highlight=False, soft_wrap=True)
    for sentence in summary["feedback"].get("sentences", []):  # sales' verdicts, when the export has them
        console.print(sentence, highlight=False, soft_wrap=True)
    console.print(f"[green]✓[/] → {out_dir}: " + ", ".join(Path(p).name for p in summary["files"].values())
                  + ", monitor.json", highlight=False)
    console.print(f"open {(out_dir / 'monitor.html').resolve()}", highlight=False, soft_wrap=True)



@app.command()
def sla(
    data: str = typer.Option(..., "--data", help=EXPORT_HELP),
    out_dir: Path = typer.Option(Path("reports/sla"), "--out", help="Where the CSVs, the plots and sla.html go."),
    params_path: Optional[Path] = ParamsOpt,
) -> None:
    """Is the marketing–sales SLA kept? Funnel by grade and week, qualified leads delivered per week
    against the commitment, speed of follow-up and what a lead is worth at each stage — with the
    funnel moments derived from the SLA rules' points; sales' rejections (rate and reasons by grade
    and week) when the export has a lead_status table."""
    from leadscore.training.sla_report import STAGE_NAMES, write_sla_report

    with _Guard():
        params = _params(params_path)
        export = _read(data)
        summary = write_sla_report(export, params, out_dir)
    value = summary["value_per_lead"]
    view = Table(title=f"funnel of {summary['leads']:,} leads (moments derived from the SLA rules)", show_edge=False)
    for col in ("stage", "leads", "value per lead"):
        view.add_column(col, justify="left" if col == "stage" else "right")
    for stage, count in summary["funnel"].items():
        worth = value[STAGE_NAMES[stage]]
        view.add_row(STAGE_NAMES[stage], f"{count:,}", "–" if worth != worth else f"{worth:,.0f}")
    out.print(view)
    fu = summary["followup"]
    console.print(f"delivered {summary['delivered_per_week']:.1f} qualified leads per week vs {summary['committed_per_week']} "
                  f"committed ({summary['weeks_below_commitment']} of {summary['weeks']} weeks short); follow-up within "
                  f"30 min {fu['within_30min']:.0%}, within a day {fu['within_1day']:.0%}, never {fu['never']:.0%}",
                  highlight=False, soft_wrap=True)
    fb = summary["feedback"]
    if fb["recorded"]:
        from leadscore.training.report_html import percent

        grades = ", ".join(f"{g} {percent(r['rejection_rate'])} of {r['with_feedback']:,}" for g, r in fb["by_grade"].items())
        console.print(f"rejected by sales (rejected or disqualified, of {fb['with_feedback']:,} handed-over leads with a "
                      f"verdict): {percent(fb['rejection_rate'])}; by grade {grades or '–'}", highlight=False, soft_wrap=True)
    else:
        console.print("rejected by sales: not recorded (the export has no lead_status)", highlight=False)
    console.print(f"[green]✓[/] → {out_dir}: " + ", ".join(Path(p).name for p in summary["files"].values()),
                  highlight=False, soft_wrap=True)

def _env_lines(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return {k.strip(): v for k, _, v in (line.partition("=") for line in path.read_text().splitlines())
            if k.strip() and not k.startswith("#")}


@app.command()
def keygen(
    env_file: Path = typer.Option(Path(".env"), "--env-file", help="Where the service reads its secrets from."),
    rotate: bool = typer.Option(False, "--rotate", help="Add a new API key in front of the existing ones."),
) -> None:
    """Create the API key and the pseudonymisation key for the service (kept in .env, mode 600).

    Existing keys are kept, so running it again changes nothing; --rotate adds a new API key in
    front (drop the old one from LEADSCORE_API_KEYS once every client uses the new one)."""
    import secrets

    values = _env_lines(env_file)
    keys = [k for k in values.get("LEADSCORE_API_KEYS", "").split(",") if k]
    created = []
    if not keys or rotate:
        keys.insert(0, "lsk_" + secrets.token_urlsafe(32))
        created.append("API key")
    if not values.get("LEADSCORE_PSEUDONYM_KEY"):
        values["LEADSCORE_PSEUDONYM_KEY"] = secrets.token_hex(32)
        created.append("pseudonymisation key")
    values["LEADSCORE_API_KEYS"] = ",".join(keys)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env_file.chmod(0o600)
    what = " and ".join(created) if created else "nothing new (keys exist)"
    console.print(f"[green]✓[/] {env_file}: {what}. The service reads it at start-up.")
    out.print(f"Use the key from a shell:\n  export LEADSCORE_API_KEY={keys[0]}\n"
              "  curl -H \"Authorization: Bearer $LEADSCORE_API_KEY\" http://localhost:3000/metadata",
              soft_wrap=True, highlight=False, markup=False)


@app.command()
def serve(
    port: int = typer.Option(3000, "--port", help="HTTP port."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    print_curl: bool = typer.Option(False, "--print-curl", help="Print a curl that scores a demo lead."),
    data: str = typer.Option("data/demo", "--data", help="Export to take the --print-curl lead from."),
    front: str = typer.Option("auto", "--front", help="haproxy: HAProxy on --port sheds and buffers bodies before the "
                              "worker (serving/front.py); none: the worker on --port alone; auto: haproxy when on PATH."),
) -> None:
    """Start the BentoML scoring service (model from the registry alias, rules as fallback)."""
    from leadscore.config.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:  # checked before BentoML starts: one line, not a worker's traceback
        _fail(str(exc))
    missing = [name for name, ok in (("LEADSCORE_API_KEYS", settings.keys()),
                                     ("LEADSCORE_PSEUDONYM_KEY", settings.pseudonym_key)) if not ok]
    if missing:
        console.print(f"[red]✗[/] {' and '.join(missing)} not set (environment or .env): "
                      "run `leadscore keygen` first", highlight=False)
        raise typer.Exit(1)
    if print_curl:
        try:
            from leadscore.serving.example import example_request

            body = example_request(data)
            console.print("\n[bold]Score a demo lead[/] (once the service says it is listening):")
            out.print(
                f"curl -s -X POST http://localhost:{port}/score -H \"Authorization: Bearer $LEADSCORE_API_KEY\" "
                "-H 'Content-Type: application/json' \\\n"
                f"  -d {shlex.quote(json.dumps(body, separators=(',', ':')))}\n",
                soft_wrap=True, highlight=False, markup=False,
            )
        except Exception as exc:  # the curl is a courtesy; the service still starts
            console.print(f"[yellow]no example lead:[/] {exc}")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")  # no usage analytics from a lead-scoring service
    from leadscore.serving import front as fronting

    if front not in ("auto", "haproxy", "none"):
        _fail(f"--front: expected auto, haproxy or none, found {front!r}")
    haproxy = fronting.binary() if front != "none" else None
    if front == "haproxy" and haproxy is None:
        _fail("--front haproxy: expected haproxy on PATH, found none (Debian/Ubuntu: apt-get install haproxy)")
    bentoml = Path(sys.executable).with_name("bentoml")

    def worker(worker_host: str, worker_port: int) -> list[str]:
        return [str(bentoml), "serve", "leadscore.serving.service:LeadScoring", "--host", worker_host,
                "--port", str(worker_port)]

    if haproxy is None:
        if front == "auto":
            console.print("[yellow]no HAProxy on PATH:[/] the worker sheds its own overload (slower under "
                          "overload; see README, Performance)", highlight=False)
        cmd = worker(host, port)
        os.execvp(cmd[0], cmd)
    worker_port = _free_port()
    with tempfile.TemporaryDirectory(prefix="leadscore-front-") as folder:
        try:
            config = fronting.write_config(Path(folder), settings, f"{host}:{port}", f"127.0.0.1:{worker_port}",
                                           haproxy=haproxy)
        except fronting.FrontError as exc:
            _fail(str(exc))
        console.print(f"front: HAProxy on {host}:{port} → worker on 127.0.0.1:{worker_port}", highlight=False)
        code = fronting.run_both(worker("127.0.0.1", worker_port), fronting.command(config, haproxy))
    raise typer.Exit(code)


@app.command("front-config")
def front_config(
    bind: str = typer.Option("0.0.0.0:3000", "--bind", help="Where HAProxy listens (host:port)."),
    upstream: str = typer.Option("127.0.0.1:3001", "--upstream", help="The worker's host:port."),
) -> None:
    """Print the HAProxy configuration `leadscore serve` writes, for a front you run yourself."""
    from leadscore.config.settings import SettingsError, get_settings
    from leadscore.serving import front as fronting

    try:
        settings = get_settings()
    except SettingsError as exc:
        _fail(str(exc))
    out.print(fronting.haproxy_config(settings, bind, upstream), markup=False, highlight=False, soft_wrap=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    app()
