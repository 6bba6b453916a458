"""The command-line side of `actrec-etl extract`: a progress bar with frames/s, one line per video."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from etl.common.cli_helpers import err_console, say
from etl.common.errors import ActrecError
from etl.common.progress import progress_columns
from etl.video.extract import extract_all
from etl.video.options import ExtractOptions


def run_extract(src: list[Path], out: Path, options: ExtractOptions) -> None:
    """Extract, print one line per video; ActrecError (exit 1) when any video failed, after all were tried."""
    progress = Progress(
        *progress_columns("frames", extra="{task.fields[fps]:.1f} frames/s"),
        console=Console(stderr=True, soft_wrap=True),
        transient=True,
    )
    state = {"task": None, "start": 0.0}

    def on_video(video: Path, n_frames: int | None) -> None:
        if state["task"] is not None:
            progress.remove_task(state["task"])
        state["task"] = progress.add_task(video.name, total=n_frames, fps=0.0)
        state["start"] = time.perf_counter()

    def on_frame(done: int) -> None:
        elapsed = max(time.perf_counter() - state["start"], 1e-9)
        progress.update(state["task"], completed=done, fps=done / elapsed)

    with progress:
        results = extract_all(src, out, options, on_video=on_video, on_frame=on_frame)
    for r in results:
        if r.status == "done":
            say(
                f"{r.video} -> {r.out}: {r.n_frames} frames, a person in {r.n_with_person} "
                f"({100 * r.n_with_person / r.n_frames:.0f}%), {r.n_persons} tracked, "
                f"{r.n_frames / max(r.seconds, 1e-9):.1f} frames/s"
            )
        elif r.status == "skipped":
            say(f"{r.video}: skipped, {r.out} exists (delete it to extract again)")
        else:
            err_console.print(f"failed: {r.error}", markup=False, highlight=False)
    failed = sum(r.status == "failed" for r in results)
    done = sum(r.status == "done" for r in results)
    skipped = len(results) - done - failed
    summary = f"{done} extracted, {skipped} skipped, {failed} failed -> {out}"
    if failed:
        raise ActrecError(summary)
    say(summary)
