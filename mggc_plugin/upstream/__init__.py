"""Everything that imports upstream (pytorch-CycleGAN-and-pix2pix) lives in this package.

Importing ``mggc_plugin.upstream.register`` needs no upstream; the model and dataset modules
import upstream's ``models``/``data`` packages and therefore run inside an upstream checkout.
"""
