import pytest

from mggc_plugin.cli import main


def test_macs_prints_table_and_total(capsys):
    assert main(["macs", "--netG", "resnet_9blocks", "--ngf", "64", "--size", "256"]) == 0
    out = capsys.readouterr().out
    assert "model.1 " in out and "ConvTranspose2d" in out
    assert "resnet_9blocks (ngf 64) at 256x256: 56.80 G MACs" in out


def test_macs_of_a_discriminator(capsys):
    assert main(["macs", "--netD", "basic", "--input_nc", "6", "--size", "256"]) == 0
    assert "basic D (ndf 64) at 256x256: 3.20 G MACs" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--size", "-64"], "--size -64: widths, sizes and channel counts are at least 1"),
    (["--size", "0"], "--size 0: widths, sizes and channel counts are at least 1"),
    (["--ngf", "0"], "--ngf 0: widths, sizes and channel counts are at least 1"),
    (["--ngf", "100000"], "resnet_9blocks (ngf 100000) at 256x256: 27,720,038 M parameters"),
    (["--netG", "unet_256", "--size", "100"], "unet_256 (ngf 64) at 100x100: the network cannot take a 100x100 input"),
])
def test_numbers_no_network_can_have_are_one_line_errors(argv, message, capsys):
    """Refused before anything is allocated (ngf 100000 would ask for ~720 GB), naming the value."""
    net = [] if "--netG" in argv else ["--netG", "resnet_9blocks"]
    assert main(["macs", *net, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "64" in err and "256" in err, "the fix names upstream's values"
    assert len(err.strip().splitlines()) == 1
