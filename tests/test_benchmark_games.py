"""The facades benchmark keys a game by what the game depends on, so that every finetuning
protocol reuses it (benchmarks/facades.py: Schedule.game_protocol, game_checkpoint)."""
from dataclasses import replace
from types import SimpleNamespace


def test_finetuning_settings_share_a_game_and_game_settings_do_not(benchmark_script):
    facades = benchmark_script("facades")
    base = facades.Schedule(prune_steps=100)
    for finetuning in (dict(finetune_epochs=20), dict(kd=True), dict(d_policy="method"), dict(round_to=16),
                       dict(fill=False), dict(ema_decay=None)):
        assert replace(base, **finetuning).game_protocol() == base.game_protocol()
        assert replace(base, **finetuning).protocol() != base.protocol()
    for game in (dict(prune_steps=200), dict(k=3), dict(batch_size=4), dict(encoder="swav"), dict(n_train=12)):
        assert replace(base, **game).game_protocol() != base.game_protocol()


def test_a_method_with_game_options_has_its_own_folder(benchmark_script, tmp_path):
    facades = benchmark_script("facades")
    run = SimpleNamespace(games=tmp_path)
    paper = facades.game_checkpoint(run, "mggc_paper", 0.1, 2)
    default = facades.game_checkpoint(run, "mggc", 0.1, 2)
    assert paper == tmp_path / "s2" / "mggc_paper-0.1" / "game.pt"
    assert default.parent.parent == paper.parent.parent and default.parent.name.startswith("mggc-0.1-")
    assert facades.game_checkpoint(run, "mggc_k0", 0.1, 2) != default
    # another cut of mggc's game plays no game of its own
    assert facades.game_checkpoint(run, "mggc_fast", 0.1, 2) == default
