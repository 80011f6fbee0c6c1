"""Evaluation of generators: FID and KID on FID Inception features (with cached reference
features), paired per-image L1/PSNR, label-map accuracy and mIoU, confidence intervals for the
difference between two students, and inference latency. One module per concern; every public
name is re-exported here."""
from .frechet import fid, frechet_distance
from .images import (
    HALVES,
    IMAGE_EXTENSIONS,
    FolderOrFiles,
    ImagesOrDir,
    PathLike,
    files_of,
    image_files,
    load_image,
    load_images,
    matched_files,
)
from .inception import (
    EVAL_EXTRA_HINT,
    FID_FEATURE_DIM,
    FID_INCEPTION_SHA1,
    FID_INPUT_SIZE,
    ImagesOrFeatures,
    as_features,
    fid_inception_file,
    inception_features,
    load_fid_inception,
    resolve_device,
)
from .kernel_distance import KID, kid
from .labels import LabelScores, label_palette, label_scores, majority_scores, snap_to_palette
from .pairs import PairedScores, paired
from .reference import reference_features
from .stats import Difference, paired_bootstrap, seed_interval, t_interval
from .timing import HostProbe, LatencyComparison, compare_latency, latency

__all__ = [
    "EVAL_EXTRA_HINT", "FID_FEATURE_DIM", "FID_INCEPTION_SHA1", "FID_INPUT_SIZE", "HALVES", "IMAGE_EXTENSIONS",
    "Difference", "FolderOrFiles", "HostProbe", "ImagesOrDir", "ImagesOrFeatures", "KID", "LabelScores",
    "LatencyComparison",
    "PairedScores", "PathLike", "as_features", "compare_latency", "fid", "fid_inception_file", "files_of",
    "frechet_distance", "image_files", "inception_features", "kid", "label_palette", "label_scores", "latency",
    "load_fid_inception", "load_image", "load_images", "majority_scores", "matched_files", "paired",
    "paired_bootstrap",
    "reference_features", "resolve_device", "seed_interval", "snap_to_palette", "t_interval",
]
