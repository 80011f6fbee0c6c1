"""Manifold neighbourhoods of MGGC (Eq. 1): teacher outputs, embeddings, top-k, file, HTML view.

The paper (§ "Finding Local Neighborhoods on the Learned Data Manifold") approximates the
teacher's learned manifold M_y by its outputs D'_y = {y'_i = G(x_i)} on the training sources,
embeds them with a self-supervised encoder E fine-tuned on the real targets {y_j}, and takes as
the neighbourhood N_{y'_i,k} of y'_i the k other outputs whose embeddings have the highest
cosine similarity with e'_i (Eq. 1). This package builds that, in steps that are each cached:

1. :func:`~.cache.build_teacher_outputs` (:mod:`.cache`) — D'_y as PNG files with a fingerprint
   (teacher checkpoint hash, source file list, preprocessing); stale caches are rebuilt,
   interrupted builds resume.
2. :func:`~.pipeline.prepare_encoder` (:mod:`.pipeline`) — E (:mod:`mggc_plugin.encoders`),
   trained once and cached.
3. :func:`~.pipeline.build_embeddings` (:mod:`.pipeline`) then :func:`~.topk.topk_cosine`
   (:mod:`.topk`) — Eq. 1.
4. :func:`~.store.save_neighborhoods` / :func:`~.store.load_neighborhoods` (:mod:`.store`) — the
   neighbourhood file.
5. :func:`~.html.write_neighborhood_html` (:mod:`.html`) — centres and their neighbours, like
   the paper's Fig. 5.

:func:`~.pipeline.build_neighborhoods` runs them all; ``mggc neighbors``
(:mod:`mggc_plugin.cli.neighbors`) is its command line. Nothing here imports upstream: datasets
are read in upstream's folder layouts by :mod:`mggc_plugin.data`, and the teacher is loaded by
:mod:`mggc_plugin.teacher`; their names are re-exported here for existing callers.
"""
from ..data import (
    DATASET_MODES,
    DIRECTIONS,
    IMG_EXTENSIONS,
    DatasetSpec,
    ImageRef,
    Preprocess,
    PreprocessedImages,
    detect_dataset_mode,
    list_images,
    pil_to_tensor,
    tensor_to_pil,
)
from ..fileio import sha256_file
from ..teacher import NORM_STATS, TeacherSpec, per_image_norm, read_train_opt
from .cache import BuildReport, TeacherOutputs, build_teacher_outputs
from .html import write_neighborhood_html
from .pipeline import build_embeddings, build_neighborhoods, prepare_encoder
from .store import FORMAT, FORMAT_VERSION, Neighborhoods, load_neighborhoods, save_neighborhoods
from .topk import precision_at_k, topk_cosine

__all__ = [
    "IMG_EXTENSIONS", "DATASET_MODES", "DIRECTIONS", "list_images", "ImageRef", "DatasetSpec",
    "detect_dataset_mode", "Preprocess", "pil_to_tensor", "tensor_to_pil", "PreprocessedImages",
    "NORM_STATS", "read_train_opt", "per_image_norm", "TeacherSpec", "sha256_file",
    "TeacherOutputs", "BuildReport", "build_teacher_outputs",
    "prepare_encoder", "build_embeddings", "build_neighborhoods",
    "topk_cosine", "precision_at_k", "FORMAT", "FORMAT_VERSION", "Neighborhoods", "save_neighborhoods",
    "load_neighborhoods",
    "write_neighborhood_html",
]
