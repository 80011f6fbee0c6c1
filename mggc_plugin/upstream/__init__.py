"""Everything that imports upstream (pytorch-CycleGAN-and-pix2pix) lives in this package.

The user's path, inside a registered checkout (``mggc register .``)::

    python train.py --model mggc_pix2pix --name run --teacher_name teacher --mggc_target_macs 0.05 ...
        # the pruning game (--dataset_mode neighborhood), then slim + finetune (--mggc_phase all);
        # --mggc_phase prune / finetune run the two halves on their own
    python test.py  --model mggc_pix2pix --name run ...                         # result pages, slim G
    mggc export checkpoints/run                                                 # latest_slim_G.pt → .ts

Modules: ``models`` (the two ``--model`` classes, upstream's ``BaseModel`` subclasses),
``dataset`` (``--dataset_mode neighborhood``) and ``register`` import upstream or write into it;
``phases`` (prune / finetune / test), ``checks`` (what a run is refused for before any work,
``--mggc_restart``, the game's length in a one-command run), ``supernet`` (``--mggc_method
gan_compression|agd``: the supernet's file and the width search), ``options``, ``specs`` (what
differs between the two models), ``teacher``, ``record`` (``mggc_run.json``), ``summary``
(``mggc_report.json``) and ``compat`` (every difference between upstream versions) do not.
Importing ``register`` or any of the latter needs no upstream; ``models`` and ``dataset`` run
inside an upstream checkout.
"""
