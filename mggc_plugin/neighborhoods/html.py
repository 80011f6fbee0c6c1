"""The neighbourhoods as an HTML page, like the paper's Fig. 5 (centres and their neighbours)."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence, Union

import dominate
from dominate import tags
from PIL import Image

from ..data import ImageRef
from ..fileio import atomic_write
from .cache import TeacherOutputs
from .store import Neighborhoods

PathLike = Union[str, Path]


def write_neighborhood_html(html_dir: PathLike, nb: Neighborhoods, outputs: TeacherOutputs,
                            n_centres: int = 20, seed: int = 0,
                            sources: Optional[Sequence[ImageRef]] = None, thumb: int = 128) -> Path:
    """An HTML page like the paper's Fig. 5: for ``n_centres`` randomly sampled y'_i (red
    frame), its k neighbours (blue frames) with their cosine similarity and source file name,
    and, when ``sources`` is given, the input x_i (grey frame) for reference. Thumbnails are
    copied into ``<html_dir>/images`` so the page stands alone; returns ``<html_dir>/index.html``."""
    html_dir = Path(html_dir)
    img_dir = html_dir / "images"
    n = len(nb)
    centres = sorted(random.Random(seed).sample(range(n), min(n_centres, n)))

    def thumbnail(image: Image.Image, name: str) -> str:
        image = image.copy()
        image.thumbnail((thumb, thumb))
        atomic_write(img_dir / name, lambda tmp: image.save(tmp, "PNG"))
        return f"images/{name}"

    meta = nb.metadata
    enc = meta.get("encoder", {})
    title = f"MGGC neighbourhoods (Eq. 1): k={nb.k}, N={n}"
    doc = dominate.document(title=title)
    with doc.head:
        tags.style("img{margin:2px} td{text-align:center;font:11px sans-serif;vertical-align:top} "
                   ".c{border:4px solid #d00} .n{border:4px solid #15c} .x{border:4px solid #999}")
    with doc:
        tags.h2(title)
        tags.p(f"encoder: {' '.join(str(enc[key]) for key in ('name', 'arch') if key in enc)} "
               f"({enc.get('init', 'frozen')}); "
               f"teacher: {meta.get('teacher', {}).get('checkpoint', '?')}; "
               f"dataset: {meta.get('dataset', {}).get('dataroot', '?')}. "
               f"Red: centre y'_i = G(x_i); blue: its k nearest neighbours by cosine similarity of E(y'); "
               f"grey: the source x_i.")
        with tags.table():
            for i in centres:
                with tags.tr():
                    if sources is not None:
                        with tags.td():
                            tags.img(src=thumbnail(sources[i].load(), f"x_{i:06d}.png"), cls="x")
                            tags.br()
                            tags.span(f"x_{i}")
                    with tags.td():
                        tags.img(src=thumbnail(outputs.image(i), f"y_{i:06d}.png"), cls="c")
                        tags.br()
                        tags.span(f"#{i} {outputs.sources[i]}")
                    for j, s in zip(nb.indices[i].tolist(), nb.similarities[i].tolist()):
                        with tags.td():
                            tags.img(src=thumbnail(outputs.image(j), f"y_{j:06d}.png"), cls="n")
                            tags.br()
                            tags.span(f"#{j} cos {s:.3f}")
                            tags.br()
                            tags.span(outputs.sources[j])
    index = html_dir / "index.html"
    atomic_write(index, lambda tmp: tmp.write_text(doc.render()))
    return index
