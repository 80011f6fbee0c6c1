"""A benchmark's result goes to JSON and Markdown side by side, atomically, and the table is printed."""
import json

from mggc_plugin.fileio import write_record


def test_the_record_and_its_table_land_beside_each_other(tmp_path, capsys):
    json_path, md_path = write_record(tmp_path / "results" / "run", {"speed": 2.5}, "| a |\n")
    assert (json_path, md_path) == (tmp_path / "results" / "run.json", tmp_path / "results" / "run.md")
    assert json.loads(json_path.read_text()) == {"speed": 2.5} and md_path.read_text() == "| a |\n"
    assert capsys.readouterr().out == "| a |\n\n"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["run.json", "run.md"], "no temporary left"
