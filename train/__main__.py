"""`python -m train ...` = `actrec-train ...`; the form torchrun needs: `torchrun --nproc_per_node N -m train fit ...`."""

from train.cli import app

app(prog_name="actrec-train")
