"""The game screen's summary (benchmarks/game_screen.py): paired per-seed differences to the
reference configuration it is asked for."""
import json


def _record(config, seed, l1):
    return {"config": config, "budget": 0.1, "seed": seed, "metrics": {"l1_teacher": l1}}


def test_differences_are_taken_to_the_chosen_reference(benchmark_script, tmp_path):
    screen = benchmark_script("game_screen")
    records = [_record("rec", 0, 0.20), _record("rec", 1, 0.30), _record("rec_window", 0, 0.18),
               _record("rec_window", 1, 0.27), _record("paper", 0, 0.5), _record("paper", 1, 0.5)]
    text = screen.summarize("pix2pix", records, 0.1, tmp_path / "screen", reference="rec")
    rows = {r["config"]: r for r in json.loads((tmp_path / "screen.json").read_text())["rows"]}
    assert "vs_reference" not in rows["rec"]["l1_teacher"]  # no difference of the reference to itself
    diff = rows["rec_window"]["l1_teacher"]["vs_reference"]["mean_diff"]
    assert abs(diff - (-0.025)) < 1e-12  # (0.18 − 0.20 + 0.27 − 0.30) / 2
    assert abs(rows["paper"]["l1_teacher"]["vs_reference"]["mean_diff"] - 0.25) < 1e-12
    assert "minus `rec`" in text
