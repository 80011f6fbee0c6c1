"""Two processes (gloo, on the CPU) build the neighbourhoods as one process does: the same teacher
outputs, embeddings and neighbour lists, every file written once, by rank 0."""
import argparse
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image
from test_neighbors_cli import TINY_SWAV, workspace  # noqa: F401  (the fixture)

from mggc_plugin import neighborhoods as nbh
from mggc_plugin.cli import neighbors as neighbors_cli


def _run(root, out):
    parser = argparse.ArgumentParser()
    neighbors_cli.configure(parser)
    args = parser.parse_args(["--dataroot", str(root / "data"), "--teacher", str(root / "checkpoints" / "tiny"),
                              "--out", str(out), "--html_centres", "3", "--device", "cpu", "--encoder", "swav",
                              *TINY_SWAV])
    return neighbors_cli.run(args)


def _worker(rank: int, world: int, root: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{root}/rendezvous", rank=rank, world_size=world)
    torch.set_num_threads(1)
    writes = []
    if rank == 1:  # atomic writes end in os.replace; the page's images are saved by PIL
        real_replace, real_save = os.replace, Image.Image.save
        os.replace = lambda a, b: writes.append(str(b)) or real_replace(a, b)
        Image.Image.save = lambda im, fp, *a, **k: (isinstance(fp, (str, os.PathLike)) and writes.append(str(fp))
                                                    or real_save(im, fp, *a, **k))
    assert _run(Path(root), Path(root) / "two" / "neighbors.pt") == 0
    torch.save(writes, f"{root}/writes{rank}.pt")
    dist.destroy_process_group()


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_two_processes_write_the_cache_one_process_writes(workspace):  # noqa: F811
    torch.set_num_threads(1)
    assert _run(workspace, workspace / "one" / "neighbors.pt") == 0
    mp.spawn(_worker, args=(2, str(workspace)), nprocs=2, join=True)

    assert torch.load(workspace / "writes1.pt") == []
    one, two = workspace / "one", workspace / "two"
    assert _files(one) == _files(two)  # nothing written twice under another name, nothing missing
    outputs = sorted((one / "neighbors.pt.cache" / "teacher_outputs").glob("*.png"))
    assert len(outputs) == 12
    for png in outputs:
        assert png.read_bytes() == (two / png.relative_to(one)).read_bytes()
    a = torch.load(one / "neighbors.pt.cache" / "embeddings.pt", weights_only=True)
    b = torch.load(two / "neighbors.pt.cache" / "embeddings.pt", weights_only=True)
    assert a["key"] == b["key"]
    torch.testing.assert_close(a["embeddings"], b["embeddings"], rtol=1e-5, atol=1e-6)
    nb_one, nb_two = nbh.load_neighborhoods(one / "neighbors.pt"), nbh.load_neighborhoods(two / "neighbors.pt")
    assert torch.equal(nb_one.indices, nb_two.indices)
    torch.testing.assert_close(nb_one.similarities, nb_two.similarities)
