"""Heatmap rendering as pure functions, no I/O: the render spec (spec.py, light: the command lines import it),
the PoseCompact box and canvas map (compact.py), the numba kernels (kernels.py, configured by numba_setup.py)
and one clip's render (clip.py). `actrec-etl render` (etl/commands/render.py) runs them over a keypoint store; training,
predict and windows import them without the render command."""
