"""Class labels during ingest: every kept clip gets a name and an integer, consistent across the whole store.

Three ways a store gets its class list:
- fixed: a dataset's own list, a `--classes` file, or the fixed list of the store appended to; a clip whose
  label is not in it is rejected ("unknown label");
- numeric: every clip carries an integer label (e.g. PYSKL pickles); the integers are kept, names come from
  the clips (or `class_<n>`), and one integer never gets two names;
- names: otherwise; the class list is the sorted names (appending keeps the old order, new names go last) and
  the integers follow from it.
"""

from __future__ import annotations

from etl.pose.clip import PoseClip
from etl.pose.limits import label_name_problem, label_problem

FIXED, NUMERIC, NAMES = "fixed", "numeric", "names"


class LabelBook:
    def __init__(
        self, fixed: list[str] | None, old_classes: list[str] | None = None, old_mode: str | None = None
    ):
        self.fixed = fixed
        self.known = list(old_classes or [])  # classes of the store appended to, in their order
        self.name_of: dict[int, str] = {}
        self.label_of: dict[str, int] = {}
        self.all_numeric = old_mode in (None, NUMERIC)
        if old_mode == NUMERIC:
            for i, name in enumerate(self.known):
                self.name_of[i], self.label_of[name] = name, i

    def resolve(self, clip: PoseClip) -> str | None:
        """Fill in clip.label_name; return a reject reason when the label cannot be kept."""
        problem = _label_shape_problem(clip)
        if problem is not None:
            return problem
        if self.fixed is not None:
            return self._resolve_fixed(clip)
        if clip.label is None:
            self.all_numeric = False
            return None
        name = clip.label_name or self.name_of.get(clip.label, f"class_{clip.label}")
        if self.name_of.get(clip.label, name) != name:
            return f"label {clip.label} is {self.name_of[clip.label]!r} for earlier clips but {name!r} here"
        if self.label_of.get(name, clip.label) != clip.label:
            return (
                f"label name {name!r} is label {self.label_of[name]} for earlier clips but {clip.label} here"
            )
        self.name_of[clip.label], self.label_of[name] = name, clip.label
        clip.label_name = name
        return None

    def _resolve_fixed(self, clip: PoseClip) -> str | None:
        fixed = self.fixed
        if clip.label is not None and not 0 <= clip.label < len(fixed):
            return f"label {clip.label} is out of range: the class list has {len(fixed)} classes"
        if clip.label_name is None:
            clip.label_name = fixed[clip.label]
        if clip.label_name not in fixed:
            shown = ", ".join(fixed[:8]) + (", ..." if len(fixed) > 8 else "")
            return f"unknown label {clip.label_name!r} (known: {shown})"
        if clip.label is not None and fixed[clip.label] != clip.label_name:
            return (
                f"label {clip.label} is {fixed[clip.label]!r} in the class list but {clip.label_name!r} here"
            )
        return None

    @property
    def mode(self) -> str:
        if self.fixed is not None:
            return FIXED
        return NUMERIC if self.all_numeric and self.name_of else NAMES

    def classes(self, names_in_table) -> list[str]:
        """The final class list; a clip's integer label is its name's position in it."""
        if self.fixed is not None:
            return list(self.fixed)
        if self.mode == NUMERIC:
            classes = [f"class_{i}" for i in range(max(self.name_of) + 1)]
            for i, name in self.name_of.items():
                classes[i] = name
            return classes
        return self.known + sorted(set(names_in_table) - set(self.known))


def _label_shape_problem(clip: PoseClip) -> str | None:
    """A label a file can hold but a store cannot: negative or huge numbers (-1 would overwrite the last class,
    10**12 would ask for 10**12 class names), non-integers, and empty, multi-line or very long names."""
    if clip.label is not None:
        problem = label_problem(clip.label)
        if problem is not None:
            return problem
    if clip.label_name is not None:
        return label_name_problem(clip.label_name)
    return None
