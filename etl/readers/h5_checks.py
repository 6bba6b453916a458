"""Checks on an HDF5 file before the h5 reader reads any data: nothing may come from another file, and no
dataset may declare more than the size limits allow (an empty (10**9, 17, 2) dataset is a few bytes on disk)."""

from __future__ import annotations

import h5py


def foreign_data(f: h5py.File) -> str | None:
    """Why `f` reaches outside itself, or None: external links (another file's group or dataset), datasets
    stored in external raw files, and virtual datasets mapping other files. Links are visited, not followed."""
    found: list[str] = []

    def visit(name: str, link) -> None:
        if found:
            return
        if isinstance(link, h5py.ExternalLink):
            found.append(
                f"/{name} is an external link to {link.filename}:{link.path}: links to other files are refused "
                "(copy the data into this file)"
            )
            return
        if isinstance(link, h5py.SoftLink):
            return  # a path inside this file: its target is visited under its own name
        node = f.get(name)
        if isinstance(node, h5py.Dataset):
            if node.external:
                found.append(f"dataset /{name} keeps its data in external file(s): refused")
            elif node.is_virtual:
                found.append(f"dataset /{name} is a virtual dataset mapping other files: refused")

    f.visititems_links(visit)
    return found[0] if found else None
