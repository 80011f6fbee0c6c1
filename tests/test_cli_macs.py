from mggc_plugin.cli import main


def test_macs_prints_table_and_total(capsys):
    assert main(["macs", "--netG", "resnet_9blocks", "--ngf", "64", "--size", "256"]) == 0
    out = capsys.readouterr().out
    assert "model.1 " in out and "ConvTranspose2d" in out
    assert "resnet_9blocks (ngf 64) at 256x256: 56.80 G MACs" in out


def test_macs_of_a_discriminator(capsys):
    assert main(["macs", "--netD", "basic", "--input_nc", "6", "--size", "256"]) == 0
    assert "basic D (ndf 64) at 256x256: 3.20 G MACs" in capsys.readouterr().out
