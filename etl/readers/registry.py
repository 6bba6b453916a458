"""What a format module declares about itself: `FormatSpec`. `etl.readers` collects the specs; reading, option
checks, dataset classes and `--format auto` all loop over them (a new format is one module with a SPEC, listed
once in `etl.readers.formats`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from etl.pose.clip import PoseClip, Reject
from etl.readers.format_options import FormatOption
from etl.readers.options import ReadContext

Reader = Callable[[list[Path], ReadContext], Iterator[PoseClip | Reject]]


@dataclass(frozen=True)
class FormatSpec:
    name: str  # the --format value
    read: Reader  # files/folders -> PoseClip | Reject, never raising for one bad file
    sniff: Callable[[Path], bool]  # is this file of this format? (suffix, name, a cheap look at the content)
    options: tuple[FormatOption, ...] = ()  # the format options it reads (etl.readers.format_options)
    check_options: Callable[[Mapping[str, object]], None] | None = None  # rules of its own on their values
    classes: tuple[str, ...] | None = None  # a dataset format's class order (label n = classes[n])
    # a generic container (.pkl, .h5, .npz, COCO/OpenPose JSON) is sniffed after the formats with specific marks
    generic: bool = False

    def option_values(self, given: Mapping[str, object]) -> dict[str, object]:
        """The format's options: the given value, else the default; checked by the format's own rules."""
        values = {option.name: given.get(option.name, option.default) for option in self.options}
        if self.check_options is not None:
            self.check_options(values)
        return values
