"""`actrec-etl`: the command line of the ETL. It draws the progress bars and, like train/cli.py for
`actrec-train`, is where an ActrecError becomes one line on stderr and an exit code: the modules it calls raise,
they never exit."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from etl.common.cli_helpers import cells, cli_errors, console, default_of, err_console, headers, say
from etl.common.errors import ActrecError
from etl.common.progress import progress_bar
from etl.heatmaps.spec import RenderSpec
from etl.pose.clip_checks import DEFAULT_NAN_POLICY
from etl.pose.skeleton import LAYOUTS
from etl.readers import FORMATS, ReadOptions
from etl.readers.format_options import option_default

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="actrec ETL: pose files -> keypoint store + clip table -> heatmap store (zarr).",
)
_RENDER = SimpleNamespace(**RenderSpec.defaults())  # `render`'s option defaults: the spec's, as declared
StorePath = Annotated[
    Path, typer.Argument(exists=True, file_okay=False, dir_okay=True, help="a store folder")
]


@app.command("demo-data")
@cli_errors
def demo_data(
    out: Annotated[Path, typer.Argument(file_okay=False, help="folder to write the demo dataset into")],
    subjects: Annotated[int, typer.Option(min=2, help="number of synthetic subjects")] = 8,
    reps: Annotated[int, typer.Option(min=1, help="repetitions per subject and action")] = 5,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 0,
):
    """Generate the small synthetic demo dataset (COCO-17 skeletons as COCO keypoint-result JSON + a manifest)."""
    from etl.commands.demo_data import generate_demo_data

    with progress_bar("demo data", unit="clips") as bar:
        summary = generate_demo_data(out, n_subjects=subjects, reps=reps, seed=seed, progress=bar.update_to)
    say(
        f"wrote {summary.n_clips} clips of {len(summary.classes)} actions to {out} "
        f"({', '.join(f'{k}: {v}' for k, v in summary.counts.items())}); manifest {summary.manifest}"
    )


@app.command()
@cli_errors
def ingest(
    src: Annotated[list[Path], typer.Argument(exists=True, help="pose files or folders")],
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="keypoint store to create")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help=f"input format: auto, {', '.join(FORMATS)}")
    ] = "auto",
    layout: Annotated[
        str,
        typer.Option(
            help=f"skeleton layout of the input: {', '.join(LAYOUTS)}; from-file (the joints and skeleton the "
            "files name: SLEAP, DeepLabCut, COCO, MMPose); or a layout YAML file (docs/formats.md)"
        ),
    ] = "coco17",
    to_layout: Annotated[
        str | None,
        typer.Option(
            help="store the clips in this layout (a name or a layout YAML), mapping joints by name from --layout"
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="manifest CSV: clip_id,label_name[,split,...]"),
    ] = None,
    classes: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="class names, one per line (label order)")
    ] = None,
    project: Annotated[
        str, typer.Option(help="3D -> 2D projection for 3D inputs: pinhole | ortho")
    ] = option_default("project"),
    occluded_score: Annotated[
        float, typer.Option(help="score given to joints marked occluded")
    ] = option_default("occluded_score"),
    split_protocol: Annotated[
        str | None, typer.Option(help="which split family names the split column")
    ] = option_default("split_protocol"),
    coords: Annotated[
        str, typer.Option(help="ntu-skeleton 2D coordinates: color | depth | 3d (projected with --project)")
    ] = option_default("coords"),
    image_size: Annotated[
        str | None,
        typer.Option(
            help="WIDTHxHEIGHT of the frames, for normalised coordinates (yolo-pose, mediapipe, ...)"
        ),
    ] = None,
    nan_policy: Annotated[
        str, typer.Option(help="non-finite coordinates: missing (drop the joint) | reject")
    ] = DEFAULT_NAN_POLICY,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store")] = False,
    append: Annotated[bool, typer.Option(help="add clips with new ids to an existing store")] = False,
    strict: Annotated[bool, typer.Option(help="fail (write nothing) if any clip is rejected")] = False,
    max_persons: Annotated[
        int, typer.Option(min=1, help="reject a clip with more persons (tracks), checked before reading it")
    ] = default_of(ReadOptions, "max_persons"),
    max_frames: Annotated[int, typer.Option(min=1, help="reject a clip with more frames")] = default_of(
        ReadOptions, "max_frames"
    ),
    max_clip_bytes: Annotated[
        int, typer.Option(min=1, help="reject a clip (or a file's array) needing more bytes in memory")
    ] = default_of(ReadOptions, "max_clip_bytes"),
):
    """Read pose files, validate them and write a keypoint store with its clip table."""
    from etl.commands.ingest import ingest as run_ingest
    from etl.pose.layout_file import FROM_FILE, layout_option
    from etl.readers import ReadOptions
    from etl.readers.options import parse_image_size

    if overwrite and append:
        raise ActrecError("--overwrite and --append exclude each other")
    if to_layout == FROM_FILE:
        raise ActrecError("--to-layout takes a built-in layout or a layout YAML, not from-file")
    options = ReadOptions(
        layout=layout_option(layout, src, fmt),
        labels_csv=labels,
        classes_file=classes,
        project=project,
        occluded_score=occluded_score,
        split_protocol=split_protocol,
        max_persons=max_persons,
        max_frames=max_frames,
        max_clip_bytes=max_clip_bytes,
        coords=coords,
        image_size=None if image_size is None else parse_image_size(image_size),
    )
    mode = "append" if append else "overwrite" if overwrite else "create"
    with progress_bar("ingest", unit="clips") as bar:
        report = run_ingest(
            src,
            out=out,
            fmt=fmt,
            options=options,
            mode=mode,
            nan_policy=nan_policy,
            strict=strict,
            to_layout=None if to_layout is None else layout_option(to_layout),
            on_progress=lambda r: bar.update_to(r.n_read),
        )
    say(
        f"format {report.fmt}: {report.summary()} -> {out} ({report.n_total} clips, "
        f"{len(report.classes)} classes)"
    )
    if report.ignored:
        names = ", ".join(p.name for p in report.ignored[:3]) + (", ..." if len(report.ignored) > 3 else "")
        say(f"ignored {len(report.ignored)} file(s) in the input folders that are no pose files ({names})")
    if report.rejects:
        _print_rejects(report.rejects)


@app.command()
@cli_errors
def extract(
    src: Annotated[
        list[Path], typer.Argument(exists=True, help="video files or folders (searched recursively)")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", file_okay=False, help="folder for one .npz pose file per video")
    ],
    backend: Annotated[str, typer.Option(help="pose backend: mediapipe (offline) | onnx")] = "mediapipe",
    layout: Annotated[
        str, typer.Option(help="skeleton written: coco17, or mediapipe33 (all 33 MediaPipe landmarks)")
    ] = "coco17",
    model: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="backend onnx: the ONNX pose model")
    ] = None,
    max_pixels: Annotated[
        int, typer.Option(min=1, help="refuse videos whose frames have more pixels (width x height)")
    ] = 7680 * 4320,
    max_persons: Annotated[int, typer.Option(min=1, help="tracks kept per video (seen in most frames)")] = 20,
    min_person_score: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="backend onnx: drop persons scored below this")
    ] = 0.3,
    allow_empty: Annotated[
        bool,
        typer.Option(
            help="no video in SRC: create an empty --out folder, not an error (needs no video extra)"
        ),
    ] = False,
):
    """Estimate poses in videos (needs actrec[video]): one pose file per video that `ingest --format npz` reads.

    Resumable: a video whose pose file exists is skipped; a bad video is reported and the others are done."""
    # the defaults above are ExtractOptions' (tests/test_video_cli.py checks): etl/video/ is not imported
    # before the command runs, so the other commands' import closure (dvc.yaml deps) stays as it is
    from etl.video.options import ExtractOptions, require_video_extra
    from etl.video.sources import find_videos, no_video_message

    # looked for before the extra is required: the DVC pipeline's extract stage runs in every `dvc repro`, and
    # its default source (data/videos) holds no video, so the demo needs neither PyAV nor mediapipe
    if not find_videos(src):
        if not allow_empty:
            raise ActrecError(no_video_message(src))
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ActrecError(f"{out}: cannot create the folder ({exc.strerror or exc})") from None
        say(f"{no_video_message(src)}: nothing extracted into {out} (--allow-empty)")
        return
    require_video_extra()
    from etl.video.cli_extract import run_extract

    options = ExtractOptions(
        backend=backend,
        layout=layout,
        model=model,
        max_pixels=max_pixels,
        max_persons=max_persons,
        min_person_score=min_person_score,
        allow_empty=allow_empty,
    )
    run_extract(src, out, options)


def _print_rejects(rejects, limit: int = 10) -> None:
    table = Table("clip", "source", "reason", title=f"{len(rejects)} rejected (all in rejects.parquet)")
    for r in rejects[:limit]:
        table.add_row(*cells(r.clip_id, r.source, r.reason))
    if len(rejects) > limit:
        table.add_row("...", "", f"{len(rejects) - limit} more")
    console.print(table)


@app.command()
@cli_errors
def query(
    store: StorePath,
    expr: Annotated[
        str,
        typer.Argument(
            help="query (pandas syntax, checked, no code), e.g. \"split == 'test' and label_name == 'wave'\""
        ),
    ],
    count: Annotated[bool, typer.Option("--count", help="print only the number of matching clips")] = False,
    columns: Annotated[str, typer.Option(help="comma-separated columns to show, or all")] = (
        "clip_id,label_name,split,n_frames,n_persons"
    ),
    limit: Annotated[int, typer.Option(help="rows to print (0 = all)")] = 20,
):
    """Select clips of a store's clip table with a query expression and print the matching clips (or their count)."""
    from etl.stores.cliptable import query_clips, read_clip_table

    df = query_clips(read_clip_table(store), expr)
    if count:
        print(len(df))
        return
    wanted = list(df.columns) if columns == "all" else [c.strip() for c in columns.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in df.columns]
    if unknown:
        raise ActrecError(f"unknown column(s) {', '.join(unknown)}; columns: {', '.join(df.columns)}")
    df = df[wanted]
    shown = df if limit == 0 else df.head(limit)
    table = Table(*headers(*shown.columns), title=Text(f"{len(df)} clips match {expr!r}"))
    for row in shown.itertuples(index=False):
        table.add_row(*cells(*row))
    console.print(table)


@app.command()
@cli_errors
def info(store: StorePath):
    """Summarise a store: what it holds, clips per label and split, rejects."""
    from etl.commands.info import store_summary

    summary = store_summary(store)
    for line in summary.header:
        say(line)
    table = Table("label", *headers(*summary.splits), "total", title="clips per label and split")
    for label, counts in summary.per_label.items():
        table.add_row(*cells(label, *(counts.get(s, 0) for s in summary.splits), sum(counts.values())))
    table.add_row(
        "[bold]total",
        *(f"[bold]{summary.per_split.get(s, 0)}" for s in summary.splits),
        f"[bold]{summary.n_clips}",
    )
    console.print(table)
    if summary.reject_reasons:
        rej = Table("reason", "clips", title=f"{summary.n_rejected} rejected")
        for reason, n in summary.reject_reasons.items():
            rej.add_row(*cells(reason, n))
        console.print(rej)


@app.command()
@cli_errors
def render(
    keypoints: StorePath,
    out: Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="heatmap store to create")],
    channels: Annotated[str, typer.Option(help="joints | limbs | joints+limbs")] = _RENDER.channels,
    size: Annotated[int, typer.Option(help="output heatmap size in pixels (square)")] = _RENDER.size,
    sigma: Annotated[float, typer.Option(help="Gaussian sigma in output pixels")] = _RENDER.sigma,
    padding: Annotated[
        float, typer.Option(help="PoseCompact padding around the clip's keypoint box")
    ] = _RENDER.padding,
    eps: Annotated[float, typer.Option(help="joints with a score below this are not drawn")] = _RENDER.eps,
    dtype: Annotated[str, typer.Option(help="uint8 (quantised, error <= 1/510) | float16")] = _RENDER.dtype,
    codec: Annotated[
        str, typer.Option(help="lz4 (fastest to read) | zstd (smallest) | none")
    ] = _RENDER.codec,
    level: Annotated[
        int | None, typer.Option(min=0, max=9, help="compression level (default: lz4 5, zstd 1)")
    ] = _RENDER.level,
    frames_per_chunk: Annotated[
        int, typer.Option(min=1, help="frames per zarr chunk")
    ] = _RENDER.frames_per_chunk,
    chunks_per_shard: Annotated[
        int, typer.Option(min=1, help="chunks per shard file")
    ] = _RENDER.chunks_per_shard,
    threads: Annotated[
        int | None, typer.Option(min=1, help="partitions rendered at once (default: cores)")
    ] = None,
    scheduler: Annotated[str, typer.Option(help="threads, or a dask.distributed address tcp://host:8786")] = (
        "threads"
    ),
    overwrite: Annotated[bool, typer.Option(help="replace an existing heatmap store")] = False,
):
    """Render PoseC3D heatmaps of every frame of every clip into a compressed, sharded zarr store.

    Interrupted renders resume where they stopped when re-run with the same arguments."""
    from etl.commands.render import render as run_render

    spec = RenderSpec(
        channels=channels,
        size=size,
        sigma=sigma,
        padding=padding,
        eps=eps,
        dtype=dtype,
        codec=codec,
        level=level,
        frames_per_chunk=frames_per_chunk,
        chunks_per_shard=chunks_per_shard,
    )
    with progress_bar("render", unit="partitions") as bar:
        report = run_render(
            keypoints,
            out,
            spec,
            threads=threads,
            scheduler=scheduler,
            overwrite=overwrite,
            on_progress=bar.update_to,
        )
    resumed = (
        f", {report.resumed_partitions} resumed from an earlier run" if report.resumed_partitions else ""
    )
    if report.redone_partitions:
        resumed += f", {report.redone_partitions} redone (their done marker or shards did not check out)"
    say(
        f"rendered {report.n_clips} clips ({report.n_frames} frames) into {out}: "
        f"{report.bytes_stored / 2**20:.1f} MiB in {report.n_partitions} partitions{resumed}"
    )


@app.command()
@cli_errors
def verify(store: StorePath):
    """Check every file of a keypoint or heatmap store: metadata against its seal, every chunk decoded, each
    clip against its stored checksum. One line per problem, naming the file or clip; exit 1 if any."""
    from etl.stores.verify import verify_store

    with progress_bar("verify", unit="clips") as bar:
        report = verify_store(store, on_progress=bar.update_to)
    if report.ok:
        console.print(
            f"ok: {report.n_clips} clips, {report.n_frames} frames decode and match their checksums "
            f"({report.kind}; every file checked)"
        )
        return
    for where, problem in report.bad:
        err_console.print(f"[bold red]damaged:[/] {escape(f'{store}/{where}: {problem}')}", highlight=False)
    err_console.print(
        f"{len(report.bad)} problem(s) in {store}: the store is damaged", markup=False, highlight=False
    )
    raise typer.Exit(1)


@app.command()
@cli_errors
def show(
    store: StorePath,
    clip_id: Annotated[str, typer.Argument(help="the clip to draw")],
    out: Annotated[Path, typer.Option("--out", "-o", dir_okay=False, help="PNG to write")] = Path("clip.png"),
    frames: Annotated[int, typer.Option(min=1, help="frames sampled across the clip")] = 8,
):
    """Draw a filmstrip of a clip's heatmaps (joints and limbs coloured) with its label."""
    from etl.commands.show import save_filmstrip

    path = save_filmstrip(store, clip_id, out, n_frames=frames)
    say(f"wrote {path}")


@app.command()
@cli_errors
def download(
    name: Annotated[str | None, typer.Argument(help="dataset name from the registry (see --list)")] = None,
    dest: Annotated[
        Path | None,
        typer.Option(
            "--dest", "-d", file_okay=False, help="folder to install into (default data/downloads/NAME)"
        ),
    ] = None,
    url: Annotated[str | None, typer.Option(help="any http(s) URL instead of a registry dataset")] = None,
    sha256: Annotated[str | None, typer.Option(help="the file's expected sha256 (64 hex digits)")] = None,
    allow_unverified: Annotated[
        bool,
        typer.Option("--allow-unverified", help="install without a known checksum (prints the one computed)"),
    ] = False,
    archive: Annotated[
        str, typer.Option(help="with --url: auto (from the name) | zip | tar | none")
    ] = "auto",
    force: Annotated[bool, typer.Option("--force", help="download again even if already installed")] = False,
    list_: Annotated[bool, typer.Option("--list", help="list the registry and exit")] = False,
):
    """Download a public pose dataset (or any --url) with sha256 verification, resume and safe unpacking."""
    from etl.commands.download import install_dataset, install_url, list_datasets

    if list_:
        for row in list_datasets():
            size = f", {row['bytes'] / 1e6:.1f} MB" if row["bytes"] else ""
            check = "sha256 pinned" if row["verified"] else "NO sha256: needs --sha256 or --allow-unverified"
            console.print(
                Text.assemble((row["name"], "bold"), f" ({row['files']} file(s){size}; {check})"),
                highlight=False,
            )
            for key in ("description", "ingest", "licence", "citation", "checksum_note"):
                # DEST: where `download NAME` installs it unless --dest says otherwise
                value = (
                    row[key].replace("DEST", f"data/downloads/{row['name']}") if key == "ingest" else row[key]
                )
                say(f"  {key}: {value}")
        return
    if (name is None) == (url is None):
        raise ActrecError("give a dataset NAME or --url URL (see --list)")
    with ExitStack() as stack:
        bars = {}

        def progress(file_name: str, done: int, total: int | None) -> None:
            if "bar" not in bars:  # opened at the first byte: errors before it print no empty bar
                bars["bar"] = stack.enter_context(progress_bar("download", unit="bytes"))
            bars["bar"].describe(file_name)
            bars["bar"].update_to(done, total)

        if url is not None:
            report = install_url(
                url,
                dest,
                sha256=sha256,
                allow_unverified=allow_unverified,
                archive=archive,
                progress=progress,
                force=force,
            )
        else:
            report = install_dataset(
                name, dest, sha256=sha256, allow_unverified=allow_unverified, progress=progress, force=force
            )
    if report.skipped:
        say(f"{report.name}: already installed in {report.dest} (--force downloads again)")
        return
    extracted = f", {report.extracted} files unpacked" if report.extracted else ""
    say(f"{report.name}: {len(report.files)} file(s) installed in {report.dest}{extracted}")
    for f in report.files:
        if not f["verified"]:
            err_console.print(
                f"[yellow]not verified:[/] {escape(str(f['name']))} has sha256 {f['sha256']}; pass --sha256 {f['sha256']} "
                "next time to pin it",
                highlight=False,
            )


@app.command()
@cli_errors
def report(
    root: Annotated[Path, typer.Option(file_okay=False, help="the repository with dvc.yaml")] = Path("."),
    html: Annotated[
        bool,
        typer.Option(
            "--html", help="also write runs/report.html: results table and pictures in one offline page"
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the rows as JSON instead of a table")
    ] = False,
):
    """Summarise the DVC pipeline's results: test accuracy per model and where the plots are."""
    import json

    from etl.commands.report import REPORT, format_table, require_results, summary_rows, write_report

    rows = require_results(summary_rows(root), root)
    if html:
        page = write_report(rows, root / REPORT)
        err_console.print(f"wrote {page}", markup=False, highlight=False)
    print(json.dumps(rows, indent=2) if as_json else format_table(rows, root))


if __name__ == "__main__":
    app()
